"""A sweep's results file is never replaced or trusted blindly (issue 23, second round):
an existing --out is refused without --resume or --overwrite; a replaced file keeps its
permissions, is written through a symbolic link and atomically; --resume checks every
row against the sweep's chunk plan and says what is wrong with a file that is not a
sweep's; a sweep too large for its rows is refused up front; a sweep timed at 0.0 s
reports its rate as "-"."""

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bnfast import _files
from bnfast.executors import Interrupted
from bnfast.search import lemma_4_5, theorem_4_1
from bnfast.search.sweep import MAX_CHUNKS

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
pytestmark = pytest.mark.timeout(120)

CHUNK = 1 << 16                      # theorem_4_1's chunk size
ARGS = dict(instances=3 * CHUNK - 5, samples=4, seed=3, progress=False, counterexamples=1)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(1) as executor:      # in this process: no workers to start
        yield executor


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory, pool):
    """A complete results file of a 3-chunk sweep, and the sweep's result."""
    path = tmp_path_factory.mktemp("sweep") / "sweep.parquet"
    return path, theorem_4_1(**ARGS, executor=pool, out=path)


def copy(sweep_file, tmp_path):
    path = tmp_path / "copy.parquet"
    path.write_bytes(sweep_file[0].read_bytes())
    return path


def resume(path, pool):
    return theorem_4_1(**ARGS, executor=pool, out=path, resume=True)


def edited(path, change):
    """Rewrites the file's rows through change(rows) -> rows, metadata kept."""
    table = pq.read_table(path)
    rows = change(table.to_pylist())
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


# ---- an existing file: refused, continued, or replaced as asked -----------------------

def test_an_existing_file_is_refused_without_resume_or_overwrite(sweep_file, tmp_path,
                                                                 pool):
    path = tmp_path / "notes.txt"
    path.write_text("my notes")
    with pytest.raises(FileExistsError, match="resume=True .* or overwrite=True"):
        theorem_4_1(**ARGS, executor=pool, out=path)
    assert path.read_text() == "my notes"
    with pytest.raises(ValueError, match="not both"):
        theorem_4_1(**ARGS, executor=pool, out=path, resume=True, overwrite=True)


def test_overwrite_keeps_permissions_and_writes_through_a_symlink(sweep_file, tmp_path,
                                                                  pool):
    target = copy(sweep_file, tmp_path)
    os.chmod(target, 0o640)
    link = tmp_path / "link.parquet"
    link.symlink_to(target.name)
    result = theorem_4_1(**dict(ARGS, seed=4), executor=pool, out=link, overwrite=True)
    assert link.is_symlink() and os.readlink(link) == target.name
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert json.loads(pq.read_table(target).schema.metadata[b"bnfast.search"])["seed"] == 4
    assert result.holds == 0 and sorted(os.listdir(tmp_path)) == ["copy.parquet",
                                                                  "link.parquet"]


def test_a_new_file_gets_the_usual_permissions(tmp_path, pool):
    umask = os.umask(0o022)
    try:
        theorem_4_1(**dict(ARGS, instances=10), executor=pool, out=tmp_path / "n.parquet")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "n.parquet").stat().st_mode) == 0o644   # not 0600


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.parquet"
    path.write_bytes(b"previous")

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt          # Ctrl-C in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        _files.replace_atomically(path, write)
    assert path.read_bytes() == b"previous" and os.listdir(tmp_path) == [path.name]


def test_an_interrupt_inside_a_write_counts_only_the_chunks_the_file_holds(
        sweep_file, tmp_path, pool, monkeypatch):
    # Ctrl-C (or SIGTERM) inside the third chunk's write: before, that chunk was counted
    # as finished ("3 of 3 ... holds them") while the file kept the first two
    path, real, calls = tmp_path / "i.parquet", pq.write_table, []

    def write_table(*args, **kwargs):
        calls.append(None)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    with pytest.raises(Interrupted) as info:
        theorem_4_1(**ARGS, executor=pool, out=path)
    assert sorted(info.value.finished) == [0, 1] and pq.read_table(path).num_rows == 2
    monkeypatch.undo()
    again = resume(path, pool)                 # the third chunk is done again, once
    full = sweep_file[1]
    assert (again.premise, again.holds) == (full.premise, full.holds)


# ---- --resume: every row checked against the sweep's chunk plan ------------------------

def test_resume_of_an_intact_file_gives_the_same_counts(sweep_file, tmp_path, pool):
    path = copy(sweep_file, tmp_path)
    edited(path, lambda rows: rows[1:2])                 # an interrupted sweep
    again = resume(path, pool)
    full = sweep_file[1]
    assert (again.instances, again.premise, again.holds) == \
        (full.instances, full.premise, full.holds)


def _set(row_index, **fields):
    return lambda rows: [dict(r, **fields) if i == row_index else r
                         for i, r in enumerate(rows)]


@pytest.mark.parametrize("change, match", [
    (_set(2, chunk=7), r"row 2 \(chunk 7\): the sweep has chunks 0 to 2"),
    (_set(0, chunk=-1), r"row 0 \(chunk -1\): chunk must be an integer >= 0"),
    (_set(1, chunk=0), r"row 1 \(chunk 0\): a second row for this chunk"),
    (lambda rows: rows + rows[:1], r"row 3 \(chunk 0\): a second row for this chunk"),
    (_set(0, count=10 ** 6, fails=10 ** 6), r"row 0 \(chunk 0\): count 1000000, but the "
                                             r"chunk has 65536 instances"),
    (_set(2, fails=10 ** 6), r"row 2 \(chunk 2\): its verdicts add up to"),
    (_set(1, holds=-5), r"row 1 \(chunk 1\): holds must be an integer >= 0"),
    (_set(0, predicted_sum=float("nan")), r"row 0 \(chunk 0\): predicted_sum must be"),
    (_set(0, kept="[1, 2"), r"row 0 \(chunk 0\): kept is not JSON"),
    (_set(0, kept='{"fails": []}'), r"row 0 \(chunk 0\): kept must be a JSON object"),
])
def test_resume_refuses_an_edited_row_naming_it(sweep_file, tmp_path, pool, change, match):
    path = copy(sweep_file, tmp_path)
    edited(path, change)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not a bnfast sweep file: " + match):
        resume(path, pool)
    assert path.read_bytes() == before                   # a failed call changes nothing


def _without_column(path):
    table = pq.read_table(path)
    pq.write_table(table.drop(["holds"]), path)


def _metadata(value):
    def change(path):
        table = pq.read_table(path)
        pq.write_table(table.replace_schema_metadata(value), path)
    return change


@pytest.mark.parametrize("damage, match", [
    (_without_column, "missing columns holds"),
    (_metadata({b"bnfast.search": b"{not json"}), "its settings metadata is not JSON"),
    (_metadata({b"bnfast.search": b"[1, 2]"}), "its settings metadata is not a JSON object"),
    (_metadata({}), "no bnfast.search settings in its metadata"),
    (lambda path: path.write_text("seed,holds\n1,2\n"), "it cannot be read as Parquet"),
])
def test_resume_of_a_file_that_is_not_a_sweep_says_what_is_wrong(sweep_file, tmp_path,
                                                                 pool, damage, match):
    path = copy(sweep_file, tmp_path)
    damage(path)
    with pytest.raises(ValueError, match=f"not a bnfast sweep file: {match}"):
        resume(path, pool)


def test_resume_of_a_missing_file_says_it_does_not_exist(tmp_path, pool):
    with pytest.raises(ValueError, match="the file does not exist"):
        resume(tmp_path / "missing.parquet", pool)
    assert not (tmp_path / "missing.parquet").exists()


# ---- the command line ------------------------------------------------------------------

def search(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "bnfast", "search", "theorem-4-1",
                           "--no-progress", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tempfile.gettempdir())


def test_cli_existing_out_needs_resume_or_overwrite(sweep_file, tmp_path):
    path = copy(sweep_file, tmp_path)
    before = path.read_bytes()
    p = search("--instances", "10", "--out", str(path))
    assert p.returncode == 2 and p.stdout == ""
    assert (f"bnfast search: --out: {path} already exists; pass --resume to continue it "
            "or --overwrite to replace it") in p.stderr
    assert path.read_bytes() == before
    p = search("--instances", "10", "--out", str(path), "--resume", "--overwrite")
    assert p.returncode == 2 and "not both" in p.stderr
    p = search("--instances", "10", "--out", str(path), "--overwrite")
    assert p.returncode == 0, p.stderr
    assert pq.read_table(path).num_rows == 1


def test_cli_resume_of_an_edited_file_is_a_usage_error(sweep_file, tmp_path):
    path = copy(sweep_file, tmp_path)
    edited(path, _set(2, chunk=9))
    p = search(*[f"--{k}={v}" for k, v in ARGS.items()
                 if k in ("instances", "samples", "seed")], "--out", str(path), "--resume")
    assert p.returncode == 2, p.stderr
    assert "not a bnfast sweep file: row 2 (chunk 9)" in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


# ---- too many instances: refused up front, no memory grown -----------------------------

def test_more_instances_than_the_chunk_limit_are_refused_up_front():
    for sweep, chunk in ((theorem_4_1, CHUNK), (lemma_4_5, 1 << 18)):
        with pytest.raises(ValueError, match=f"instances must be <= {MAX_CHUNKS * chunk:,}"):
            sweep(10 ** 21, progress=False)
    start = time.monotonic()
    p = search("--instances", str(10 ** 12))
    assert p.returncode == 2 and p.stdout == ""
    assert "--instances must be <= 17,179,869,184 for theorem-4-1" in p.stderr
    assert time.monotonic() - start < 30


# ---- the report of a sweep timed at 0.0 s ---------------------------------------------

def test_render_of_a_sweep_that_took_no_time(sweep_file):
    from bnfast.cli.search import render
    text = render(dataclasses.replace(sweep_file[1], seconds=0.0))
    assert text.splitlines()[-1] == "(0.0 s, - instances/s)"
