"""The files bnfast writes for its user (a sweep's results file, a figure), each rule
written once.

``check_target(path, ...)``: whether ``path`` may be written, asked before any work: its
folder must exist and be writable, it must not be a folder, and an existing file is
refused unless the caller says to replace it (``overwrite``). A symbolic link is written
through: the file it points to is the one checked and replaced, the link stays.

``replace_atomically(path, write)``: writes the new content next to the file (a
temporary file in the same folder) and renames it over the file, so that whenever the
writer stops (Ctrl-C, SIGTERM, SIGKILL, a full disk) the file on disk is either the
previous complete one or the new complete one. The file keeps its permissions; a new
file gets the usual ones (0666 less the umask).
"""

import contextlib
import os
import secrets
import stat

__all__ = ["check_target", "replace_atomically"]


def check_target(path, name, overwrite=False, exists_hint=None):
    """Raises unless ``path`` may be written: OSError naming ``name`` (e.g. "--out")
    when its folder is missing or not writable or it is a folder; FileExistsError when
    it exists (a dangling link included) and ``overwrite`` is false, with
    ``exists_hint`` (what to say instead, e.g. "pass --overwrite to replace it")."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name}: the path is empty")
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise IsADirectoryError(f"{name}: cannot write {path}: it is a folder")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OSError(f"{name}: cannot write {path}: {folder} is not a writable folder")
    if not overwrite and os.path.lexists(path):
        hint = exists_hint or "pass overwrite=True to replace it"
        raise FileExistsError(f"{name}: {path} already exists; {hint}")


def replace_atomically(path, write):
    """Calls write(tmp) to write the new content to a temporary file next to the file
    ``path`` points to, then renames it over that file (module docstring). On any error
    or interrupt the temporary file is removed and the old file is left as it was."""
    target = os.path.realpath(os.fspath(path))        # through a symbolic link
    folder, base = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None                                    # a new file: 0666 less the umask
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        os.close(fd)
        fd = None
        write(tmp)
        with open(tmp, "rb+") as fh:                   # on disk before the rename
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd is not None:
            os.close(fd)
        # An interrupt can land after os.replace has moved tmp: then there is nothing
        # to remove, and the interrupt (not a FileNotFoundError) must come out.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
