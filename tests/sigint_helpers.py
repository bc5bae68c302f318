"""Ctrl-C in tests, whatever the shell left: a background job starts with SIGINT
ignored, and a process started with SIGINT ignored keeps it ignored (and passes that
on to its children), so Python would never raise KeyboardInterrupt there."""

import contextlib
import signal


@contextlib.contextmanager
def python_sigint_handler():
    """Python's own Ctrl-C handler in this process for the duration."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def default_sigint():
    """preexec_fn for subprocess.Popen: the child starts with SIGINT's default
    disposition, so its Python installs the KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
