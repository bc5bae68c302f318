"""The Parquet results file of a sweep (``out=``, ``--out FILE.parquet``): one row per
finished chunk holding the chunk's AGGREGATES (counts by verdict, the closed form's sum),
not one row per instance, and the failing instances the chunk kept. The sweep's settings
are in the file's metadata, so ``resume`` continues only a compatible sweep, and every
row read back is checked against that sweep's chunk plan (chunk indices, counts) before
it counts. The file is rewritten atomically (bnfast._files: a temporary file renamed
over it, permissions kept, through a symbolic link) after each chunk: whenever the sweep
stops, Ctrl-C, SIGTERM and SIGKILL included, the file on disk is complete and valid. An
existing file is continued (resume) or replaced (overwrite) only when asked."""

import json
import os

from .._files import check_target, replace_atomically
from .sweep import VERDICT_NAMES, chunk_count

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


class NotASweepFile(ValueError):
    """A file given to resume that is not a results file of a bnfast sweep (or was
    edited): the message says what is wrong, and with which row."""


class ChunkFile:
    """Rows {chunk: result dict} of one sweep, kept in ``path``.

    settings : the sweep's identity (statement, data, dim, samples, seed, chunk size,
        chunks); a resumed file must have the same.
    resume : the file must exist and is continued (``load``).
    overwrite : an existing file is replaced; without resume or overwrite an existing
        file is refused (FileExistsError), before any work.
    """

    COLUMNS = ("chunk", "count", "no_premise", "holds", "fails", "undecided", "degenerate",
               "predicted_sum", "predicted_count", "kept")

    def __init__(self, path, settings, resume=False, overwrite=False):
        self.path = os.fspath(path)
        self.settings = settings
        self.rows = {}
        if resume and overwrite:
            raise ValueError("resume=True continues the out= file and overwrite=True "
                             "replaces it: not both")
        _pyarrow()
        check_target(self.path, "out", overwrite=resume or overwrite,
                     exists_hint="pass resume=True to continue it or overwrite=True to "
                                 "replace it")
        if resume and not os.path.exists(self.path):
            raise ValueError(f"cannot resume from {self.path}: the file does not exist")

    def _not_sweep(self, what):
        return NotASweepFile(f"cannot resume from {self.path}: not a bnfast sweep file: "
                             f"{what}")

    def load(self):
        """Reads the finished chunks of an earlier run of the same sweep (resume), each
        row validated against the sweep's chunk plan (``_check_row``); NotASweepFile
        (a ValueError) naming what is wrong otherwise."""
        _, pq = _pyarrow()
        try:
            table = pq.read_table(self.path)
        except Exception as exc:           # pyarrow's errors: OSError, ArrowInvalid, ...
            raise self._not_sweep(f"it cannot be read as Parquet ({exc})") from None
        meta = (table.schema.metadata or {}).get(_KEY)
        if meta is None:
            raise self._not_sweep("no bnfast.search settings in its metadata")
        try:
            saved = json.loads(meta)
        except ValueError as exc:
            raise self._not_sweep(f"its settings metadata is not JSON ({exc})") from None
        if not isinstance(saved, dict):
            raise self._not_sweep("its settings metadata is not a JSON object")
        if saved != self.settings:
            diff = {k: (saved.get(k), v) for k, v in self.settings.items()
                    if saved.get(k) != v}
            raise ValueError(f"cannot resume from {self.path}: it holds another sweep "
                             f"(file vs now: {diff})")
        missing = [c for c in self.COLUMNS if c not in table.column_names]
        if missing:
            raise self._not_sweep(f"missing columns {', '.join(missing)}")
        for number, row in enumerate(table.select(list(self.COLUMNS)).to_pylist()):
            row = self._check_row(number, row)
            self.rows[row["chunk"]] = row
        return self.rows

    def _check_row(self, number, row):
        """Row ``number`` of the file as the sweep would have written it: its chunk one
        of the sweep's (0 <= chunk < chunks, not seen before), its count that chunk's,
        its verdict counts non-negative integers adding up to the count, the closed
        form's sum and count within it, every undecided instance kept."""
        chunks = self.settings["chunks"]

        def bad(what):
            return self._not_sweep(f"row {number} (chunk {row.get('chunk')!r}): {what}")

        for name in ("chunk", "count", "predicted_count", *VERDICT_NAMES):
            if type(row[name]) is not int or row[name] < 0:
                raise bad(f"{name} must be an integer >= 0, got {row[name]!r}")
        chunk = row["chunk"]
        if chunk >= chunks:
            raise bad(f"the sweep has chunks 0 to {chunks - 1}")
        if chunk in self.rows:
            raise bad("a second row for this chunk")
        expected = chunk_count(self.settings, chunk)
        if row["count"] != expected:
            raise bad(f"count {row['count']}, but the chunk has {expected} instances")
        verdicts = sum(row[name] for name in VERDICT_NAMES)
        if verdicts != expected:
            raise bad(f"its verdicts add up to {verdicts}, not to the chunk's "
                      f"{expected} instances")
        if row["predicted_count"] > expected:
            raise bad(f"predicted_count {row['predicted_count']} > the chunk's {expected}")
        total = row["predicted_sum"]
        if type(total) is not float or not 0.0 <= total <= row["predicted_count"]:
            raise bad(f"predicted_sum must be a number in [0, predicted_count], "
                      f"got {total!r}")
        try:
            kept = json.loads(row["kept"])
        except (TypeError, ValueError):
            raise bad("kept is not JSON") from None
        if not isinstance(kept, dict) or set(kept) != {"fails", "undecided"} or \
                not all(isinstance(v, list) for v in kept.values()):
            raise bad("kept must be a JSON object with the lists 'fails' and 'undecided'")
        if len(kept["fails"]) > row["fails"] or len(kept["undecided"]) != row["undecided"]:
            raise bad(f"it keeps {len(kept['fails'])} failing and {len(kept['undecided'])} "
                      f"undecided instances for {row['fails']} and {row['undecided']}")
        for instance in kept["fails"] + kept["undecided"]:
            index = instance.get("index") if isinstance(instance, dict) else None
            if type(index) is not int or not 0 <= index < expected:
                raise bad("a kept instance without its index in the chunk")
        return dict(row, kept=kept)

    def add(self, chunk, row):
        """Stores one finished chunk and rewrites the file; if the write fails (an
        interrupt inside it, a full disk), neither the file nor the rows change."""
        self.rows[chunk] = dict(row, chunk=chunk)
        try:
            self.write()
        except BaseException:
            del self.rows[chunk]
            raise

    def write(self):
        """Writes every stored row, atomically (module docstring)."""
        pa, pq = _pyarrow()
        rows = [self.rows[c] for c in sorted(self.rows)]
        columns = {name: [r[name] for r in rows] for name in self.COLUMNS if name != "kept"}
        columns["kept"] = [json.dumps(r["kept"]) for r in rows]
        table = pa.table(columns).replace_schema_metadata(
            {_KEY: json.dumps(self.settings).encode()})
        replace_atomically(self.path, lambda tmp: pq.write_table(table, tmp))

