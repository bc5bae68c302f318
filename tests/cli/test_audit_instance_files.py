"""`bnfast audit STATEMENT --instance FILE` on files that are not what they should be
(issue 23): each is a usage error (exit 2) saying what is wrong with which file or
field, never a traceback; and lemma-4-5 instances render in both formats. In process
through bnfast.cli.main.main (an uncaught exception fails the test as a traceback
would)."""

import json
import re
import zipfile

import numpy as np
import pytest

from bnfast.cli.main import main

LEMMA = {"X": [[1, 0], [0, 1], [2, 3]], "y": [1, 2, 0], "w0": [1, 1]}
THEOREM = {"h": [0, 1, 3], "grad": [1, 0, 0]}


def audit(capsys, *args):
    code = main(["audit", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_lemma_4_5_instance_from_json_and_npz(tmp_path, capsys):
    # The JSON path crashed with AttributeError in render_instance (Lemma45Report had
    # no statement); the .npz path the same way.
    (tmp_path / "i.json").write_text(json.dumps(LEMMA))
    np.savez(tmp_path / "i.npz", **{k: np.array(v, float) for k, v in LEMMA.items()})
    for name in ("i.json", "i.npz"):
        code, out, err = audit(capsys, "lemma-4-5", "--instance", tmp_path / name)
        assert code == 0, err
        assert out.splitlines()[:3] == ["Lemma 4.5 (printed): FAILS", "  lhs = 2",
                                        "  rhs = 1.8"]
        code, out, err = audit(capsys, "lemma-4-5", "--instance", tmp_path / name,
                               "--json")
        row, = json.loads(out)["rows"]
        assert (row["statement"], row["form"], row["holds"]) == ("Lemma 4.5", "printed",
                                                                 False)
    code, out, err = audit(capsys, "lemma-4-5", "--instance", tmp_path / "i.json",
                           "--exact")
    assert code == 0 and "  rhs = 9/5" in out


def _npz_bytes(tmp_path):
    np.savez_compressed(tmp_path / "good.npz", h=np.array([0.0, 1, 3]),
                        grad=np.array([1.0, 0, 0]))
    return (tmp_path / "good.npz").read_bytes()


def _crc_damaged(data):
    # Flip a byte inside the first member's compressed data (after its local header).
    name_length = int.from_bytes(data[26:28], "little")
    at = 30 + name_length + int.from_bytes(data[28:30], "little") + 4
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("name, content, message", [
    ("t.npz", lambda p: _npz_bytes(p)[:200], "the .npz archive is truncated or damaged"),
    ("c.npz", lambda p: _crc_damaged(_npz_bytes(p)),
     "the .npz archive is truncated or damaged (at field 'h')"),
    ("j.npz", lambda p: json.dumps(THEOREM).encode(),
     "not an .npz archive: it looks like JSON (name it .json)"),
    ("e.npz", lambda p: b"", "not an .npz archive: the file is empty"),
    ("z.json", _npz_bytes, "not valid JSON"),
    ("z.json", _npz_bytes, "it is a zip archive (an .npz archive? name it .npz)"),
    ("big.json", lambda p: json.dumps({"h": [10 ** 400, 0, 1], "grad": [1, 0, 0]}).encode(),
     "field 'h' holds an integer of 401 digits, beyond the float64 range"),
    ("big.json", lambda p: b'{"h": [1e400, 0, 1], "grad": [1, 0, 0]}',
     "field 'h' holds 1e400, beyond the float64 range"),
    ("r.json", lambda p: b'{"h": [[0, 1], [3]], "grad": [1, 0, 0]}',
     "field 'h' is not a rectangular array of numbers"),
    ("b.json", lambda p: b'{"h": [0, 1, 3], "grad": [true, 0, 0]}',
     "field 'grad' must hold numbers"),
])
def test_bad_files_are_usage_errors_naming_file_and_field(tmp_path, capsys, name, content,
                                                         message):
    path = tmp_path / name
    path.write_bytes(content(tmp_path))
    code, out, err = audit(capsys, "theorem-4-1", "--instance", path)
    assert code == 2 and out == ""
    assert err.startswith(f"bnfast audit: {path}: ") and message in err, err


def test_npz_with_a_single_array_or_objects(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.ones(3))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    code, _, err = audit(capsys, "theorem-4-1", "--instance", tmp_path / "a.npz")
    assert code == 2 and "a single .npy array, not an archive of named fields" in err
    with zipfile.ZipFile(tmp_path / "o.npz", "w") as archive:    # what np.savez writes
        for field, value in (("h", np.arange(3.0)), ("grad", np.array([1, "a"], object))):
            with archive.open(f"{field}.npy", "w") as member:
                np.lib.format.write_array(member, value, allow_pickle=True)
    code, _, err = audit(capsys, "theorem-4-1", "--instance", tmp_path / "o.npz")
    assert code == 2 and "field 'grad' holds Python objects" in err


def test_a_400_digit_integer_is_exact_with_exact(tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"h": [10 ** 400, 0, 1], "grad": [1, 0, 0]}))
    code, out, err = audit(capsys, "theorem-4-1", "--instance", path, "--exact")
    assert code == 0, err
    # lhs ~ 1e-1600 exactly: shown to 6 digits, not as 0 (its float)
    lines = out.splitlines()
    assert lines[0] == "Theorem 4.1 (printed): FAILS"
    assert re.fullmatch(r"  lhs = [1-9]\.\d{5}e-\d{3,4}", lines[1]), lines[1]
    code, out, err = audit(capsys, "theorem-4-1", "--instance", path, "--exact", "--json")
    lhs = json.loads(out)["rows"][0]["exact_forms"]["lhs"]     # the exact rational
    assert code == 0 and re.fullmatch(r"\d+/\d{800,}", lhs)


@pytest.mark.parametrize("seed", ["-1", "1.5", str(2 ** 63)])
def test_bad_seed_is_refused_with_or_without_instance(tmp_path, capsys, seed):
    (tmp_path / "i.json").write_text(json.dumps(THEOREM))
    for extra in ([], ["theorem-4-1", "--instance", tmp_path / "i.json"]):
        code, out, err = audit(capsys, "--seed", seed, *extra)
        assert code == 2 and out == "" and "--seed" in err, (seed, extra, err)
