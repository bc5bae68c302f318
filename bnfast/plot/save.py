"""Writing figures: the format is the one the path's suffix names."""

import io
import os

from .._files import replace_atomically

__all__ = ["FORMATS", "figure_format", "pyplot", "save_and_close", "save_figure"]

#: The formats a figure can be written in, by suffix.
FORMATS = ("png", "pdf", "svg")


def figure_format(path):
    """The format for `path` ("png", "pdf" or "svg", from its suffix); ValueError for an
    empty path or another suffix."""
    path = os.fspath(path)
    if not path:
        raise ValueError("the figure path is empty")
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"{path!r} must end in one of "
                         f"{', '.join('.' + f for f in FORMATS)} (the suffix names the format)")
    return suffix


def pyplot():
    """matplotlib.pyplot with the Agg backend, or an ImportError saying how to install."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("bnfast's plots need matplotlib: pip install 'bnfast[plot]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    """Writes fig to path in the suffix's format. A PNG is reduced to a 256-colour
    palette when Pillow is there, as it is with matplotlib (flat contour fills lose
    nothing visible, and the file is a third of the size). The file is replaced
    atomically (bnfast._files.replace_atomically: never half written, its permissions
    kept, a symbolic link written through)."""
    data = _figure_bytes(fig, figure_format(path))

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
    replace_atomically(path, write)


def _figure_bytes(fig, fmt):
    """The figure's file content in format ``fmt`` (PNGs palette-reduced)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    if fmt != "png":
        return buffer.getvalue()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        data = buffer.getvalue()
    else:
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB").quantize(
            colors=256, method=Image.Quantize.FASTOCTREE)
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        data = out.getvalue()
    return data


def save_and_close(fig, path):
    """save_figure(fig, path), then the figure closed whatever happened; returns path."""
    import matplotlib.pyplot as plt
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
