"""The Parquet results file of a sweep (``out=``, ``--out FILE.parquet``): one row per
finished chunk holding the chunk's AGGREGATES (counts by verdict, the closed form's sum),
not one row per instance, and the failing instances the chunk kept. The sweep's settings
are in the file's metadata, so ``resume`` continues only a compatible sweep. The file is
rewritten atomically (a temporary file renamed over it) after each chunk: whenever the
sweep stops, Ctrl-C included, the file on disk is complete and valid."""

import contextlib
import json
import os
import tempfile

__all__ = ["ChunkFile"]

_KEY = b"bnfast.search"


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError("writing sweep results needs pyarrow: "
                          "pip install 'bnfast[parquet]'") from exc
    return pyarrow, pyarrow.parquet


class ChunkFile:
    """Rows {chunk: result dict} of one sweep, kept in ``path``.

    settings : the sweep's identity (statement, data, dim, samples, seed, chunk size,
        chunks); a resumed file must have the same.
    """

    COLUMNS = ("chunk", "count", "no_premise", "holds", "fails", "undecided", "degenerate",
               "predicted_sum", "predicted_count", "kept")

    def __init__(self, path, settings):
        self.path = os.fspath(path)
        self.settings = settings
        self.rows = {}
        _pyarrow()
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise OSError(f"cannot write {self.path}: {folder} is not a writable folder")
        if os.path.isdir(self.path):
            raise OSError(f"cannot write {self.path}: it is a folder")

    def load(self):
        """Reads the finished chunks of an earlier run of the same sweep (resume)."""
        _, pq = _pyarrow()
        try:
            table = pq.read_table(self.path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot resume from {self.path}: not a bnfast sweep file "
                             f"({exc})") from None
        meta = (table.schema.metadata or {}).get(_KEY)
        if meta is None:
            raise ValueError(f"cannot resume from {self.path}: not a bnfast sweep file")
        saved = json.loads(meta)
        if saved != self.settings:
            diff = {k: (saved.get(k), v) for k, v in self.settings.items()
                    if saved.get(k) != v}
            raise ValueError(f"cannot resume from {self.path}: it holds another sweep "
                             f"(file vs now: {diff})")
        for row in table.to_pylist():
            row["kept"] = json.loads(row["kept"])
            self.rows[row["chunk"]] = row
        return self.rows

    def add(self, chunk, row):
        """Stores one finished chunk and rewrites the file."""
        self.rows[chunk] = dict(row, chunk=chunk)
        self.write()

    def write(self):
        pa, pq = _pyarrow()
        rows = [self.rows[c] for c in sorted(self.rows)]
        columns = {name: [r[name] for r in rows] for name in self.COLUMNS if name != "kept"}
        columns["kept"] = [json.dumps(r["kept"]) for r in rows]
        table = pa.table(columns).replace_schema_metadata(
            {_KEY: json.dumps(self.settings).encode()})
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bnfast-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path)
        except BaseException:
            # Ctrl-C can land after os.replace has moved tmp: then there is nothing to
            # remove, and the interrupt (not a FileNotFoundError) must come out.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
