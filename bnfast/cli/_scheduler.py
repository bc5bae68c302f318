"""--scheduler ADDR, shared by the subcommands that run grids (run, search)."""

__all__ = ["scheduler_client"]


def scheduler_client(address):
    """None without an address, else a dask.distributed.Client connected to it;
    ValueError with the message for the user when that fails (bad address, no dask,
    no scheduler answering)."""
    if address is None:
        return None
    from ..executors import connect
    try:
        return connect(address)
    except (ValueError, ImportError, OSError) as exc:
        raise ValueError(f"--scheduler: {exc}") from None
