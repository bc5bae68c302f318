"""--plot PATH, like --out, is checked before any work and replaces nothing unasked
(issue 23, second round): `bnfast run NAME --plot /missing/dir/x.png` used to do the
whole run and then say "cannot write"; an existing figure is refused without
--overwrite; with it the file keeps its permissions and a symbolic link is written
through (the one rule: bnfast._files, used by --out and --plot alike)."""

import os
import stat
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.timeout(120)


def bnfast(*args):
    return subprocess.run([sys.executable, "-m", "bnfast", *args], capture_output=True,
                          text=True, timeout=60, cwd=tempfile.gettempdir())


@pytest.mark.parametrize("command", [("run", "explosion"), ("search", "lemma-4-5")])
def test_an_unwritable_plot_path_is_refused_before_the_run(tmp_path, command):
    # The full explosion run takes minutes: only a check before it finishes in time.
    p = bnfast(*command, "--plot", str(tmp_path / "missing" / "x.png"))
    assert p.returncode == 2, p.stderr
    assert f"--plot: cannot write {tmp_path / 'missing' / 'x.png'}" in p.stderr
    assert p.stdout == "" and "Traceback" not in p.stderr


def test_an_existing_figure_needs_overwrite(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"my figure")
    p = bnfast("run", "explosion", "--plot", str(path))
    assert p.returncode == 2, p.stderr
    assert f"--plot: {path} already exists; pass --overwrite to replace it" in p.stderr
    assert p.stdout == "" and path.read_bytes() == b"my figure"


def test_overwrite_replaces_a_figure_keeping_permissions_through_a_symlink(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "figure.png"
    target.write_bytes(b"my figure")
    os.chmod(target, 0o640)
    link = tmp_path / "link.png"
    link.symlink_to(target.name)
    p = bnfast("verify", "--plot", str(link), "--overwrite")
    assert p.returncode == 0, p.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert link.is_symlink() and sorted(os.listdir(tmp_path)) == ["figure.png", "link.png"]
