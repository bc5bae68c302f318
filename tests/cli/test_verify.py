"""The command line: `bnfast verify [--exact] [--json] [--plot PATH]`, run as a user
runs it (a subprocess of `python -m bnfast`), plus the entry point and usage errors."""

import importlib.metadata
import json
import math
import subprocess
import tempfile
import sys

import numpy as np
import pytest
import sympy

from bnfast import cli

VERDICT = ("Lemma 4.5 of Santurkar et al. (2018) is refuted by Example 3.2 of "
           "Dannemann & Junike (2025)")
GRAD = [-10 * math.sqrt(78) / 507, 14 * math.sqrt(78) / 507]


def run(*args):
    # From outside the source tree: `python -m` puts the working directory first on
    # sys.path, where a checkout's bnfast/ (without the built extension) would shadow
    # the installed package.
    return subprocess.run([sys.executable, "-m", "bnfast", *args], capture_output=True,
                          text=True, timeout=300, cwd=tempfile.gettempdir())


def test_verify_prints_the_argument_and_the_verdict():
    p = run("verify")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert VERDICT in out
    assert out.rstrip().splitlines()[-3].startswith("Verdict: ")
    for step in ["x(1) = (1, 0)   y(1) = 8", "x(3) = (1, 1)   y(3) = 11",
                 "W* = (7, 5)", "W0 = (7, 5) = W*", "<W0, W*> = 74 > 0",
                 "grad L_BN(W*) = (-0.1741965, 0.2438751)", "NOT zero",
                 "3 w1 = 5 w2, w1 > 0", "What* = (7.352941, 4.411765)",
                 "left  ||W0 - What*||^2 = 0.470588235", "inequality (1) FAILS",
                 "agrees with the closed form"]:
        assert step in out, step
    assert p.stderr == ""


def test_verify_exact_shows_exact_forms():
    p = run("verify", "--exact")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert VERDICT in out
    for form in ["(-10*sqrt(78)/507, 14*sqrt(78)/507)", "(125/17, 75/17)", "8/17 ~ 0.470588235",
                 "224 - 2*sqrt(38) ~ 211.671172", "224 - 18*sqrt(78)/13 ~ 211.771408",
                 "8/17 ~ 0.470588235 > 0: inequality (1) FAILS"]:
        assert form in out, form


def test_verify_json_parses_and_carries_the_gradient():
    p = run("verify", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    np.testing.assert_allclose(d["grad_bn_at_w_star"], GRAD, rtol=1e-12)
    np.testing.assert_allclose(d["w_star"], [7, 5], rtol=1e-13)
    np.testing.assert_allclose(d["bn_optimum"], [125 / 17, 75 / 17], rtol=1e-13)
    assert d["lhs"] == pytest.approx(8 / 17, rel=1e-12) and abs(d["rhs"]) < 1e-12
    assert d["holds"] is False and d["premise"] is True
    assert d["gd"]["agrees"] is True
    assert VERDICT in d["verdict"]
    for field in ["w_star", "inner_w0_w_star", "bn_optimum", "lhs", "rhs", "holds",
                  "grad_bn_at_w_star", "bn_direction", "exact"]:
        assert field in d, field


def test_verify_exact_json_carries_exact_forms():
    p = run("verify", "--exact", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["exact"] is True
    forms = d["exact_forms"]
    expected = [-10 * sympy.sqrt(78) / 507, 14 * sympy.sqrt(78) / 507]
    assert all(sympy.simplify(sympy.sympify(f) - e) == 0
               for f, e in zip(forms["grad_bn_at_w_star"], expected))
    assert sympy.sympify(forms["lhs"]) == sympy.Rational(8, 17)
    assert sympy.sympify(forms["rhs"]) == 0
    np.testing.assert_allclose(d["grad_bn_at_w_star"], GRAD, rtol=1e-15)


def test_verify_plot_writes_a_png(tmp_path):
    target = tmp_path / "verify.png"
    p = run("verify", "--plot", str(target))
    assert p.returncode == 0, p.stderr
    assert VERDICT in p.stdout and f"wrote {target}" in p.stdout
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < len(data) < 150_000
    from PIL import Image
    with Image.open(target) as image:
        width, height = image.size
    assert width >= 800 and height >= 400


def test_verify_plot_with_json_keeps_stdout_parseable(tmp_path):
    target = tmp_path / "v.png"
    p = run("verify", "--json", "--plot", str(target))
    assert p.returncode == 0, p.stderr
    json.loads(p.stdout)
    assert target.stat().st_size > 0
    assert "wrote" in p.stderr


def test_usage_errors_exit_2():
    p = run("verify", "--no-such-option")
    assert p.returncode == 2 and "usage" in p.stderr
    p = run()
    assert p.returncode == 2 and "verify" in p.stderr
    p = run("frobnicate")
    assert p.returncode == 2


def test_unwritable_plot_path_exits_2(tmp_path):
    p = run("verify", "--plot", str(tmp_path / "missing-dir" / "v.png"))
    assert p.returncode == 2
    assert "cannot write" in p.stderr


@pytest.mark.parametrize("path,match", [("", "the figure path is empty"),
                                        ("v.jpg", "must end in one of")])
def test_bad_plot_paths_exit_2_before_any_work(tmp_path, path, match):
    p = run("verify", "--plot", path)
    assert p.returncode == 2 and match in p.stderr
    assert p.stdout == ""                            # nothing computed, nothing printed


def test_plot_pdf(tmp_path):
    target = tmp_path / "v.pdf"
    p = run("verify", "--plot", str(target))
    assert p.returncode == 0, p.stderr
    assert target.read_bytes().startswith(b"%PDF-")


def test_verify_explains_its_gradient_descent_settings():
    out = run("verify").stdout
    assert "BN network from W0: 5000 steps of size 2.001, the inverse of a bound" in out
    assert "curvature near W0 computed from the data (so every step is" in out


def test_subcommands_register_themselves():
    import importlib
    parser = importlib.import_module("bnfast.cli.main").build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "verify" in sub.choices
    assert sub.choices["verify"].get_default("run").__module__ == "bnfast.cli.verify"


def test_shared_options_read_the_same_in_every_subcommand():
    # One builder per option (bnfast/cli/_options.py): same flag, metavar and help.
    import importlib
    parser = importlib.import_module("bnfast.cli.main").build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    # what a subcommand says of its own: the seed's purpose, the figure
    own = {"--seed": ", an integer", "--plot": " to PATH", "--out": " in FILE"}
    seen = {}
    for subparser in sub.choices.values():
        for action in subparser._actions:
            flag = (action.option_strings or [None])[-1]
            if flag in ("--seed", "--json", "--plot", "--scheduler", "--no-progress",
                        "--exact", "--out"):
                shared = action.help.split(own[flag])[-1] if flag in own else action.help
                seen.setdefault(flag, set()).add((action.metavar, shared))
    assert set(seen) == {"--seed", "--json", "--plot", "--scheduler", "--no-progress",
                         "--exact", "--out"}
    assert all(len(forms) == 1 for forms in seen.values()), seen
    assert seen["--seed"] == {("S", " in [0, 2**63) (default 0)")}


def test_a_bad_seed_is_a_usage_error_in_every_subcommand():
    for command in ("run", "search", "audit"):
        args = {"run": ["run", "decoupling"], "search": ["search", "lemma-4-5"],
                "audit": ["audit"]}[command]
        p = run(*args, "--seed", "-1")
        assert p.returncode == 2, (command, p.stderr)
        assert f"bnfast {command}: --seed must be in [0, 2**63), got -1" in p.stderr
        assert "Traceback" not in p.stderr and p.stdout == ""


def test_main_in_process_and_console_script_entry_point(capsys):
    assert cli.main(["verify"]) == 0
    assert VERDICT in capsys.readouterr().out
    (ep,) = importlib.metadata.entry_points(group="console_scripts", name="bnfast")
    assert ep.load() is cli.main


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch, capsys):
    from bnfast import plot
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import fails
    with pytest.raises(ImportError, match=r"pip install 'bnfast\[plot\]'"):
        plot.plot_example_3_2(tmp_path / "x.png")
    assert cli.main(["verify", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'bnfast[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
