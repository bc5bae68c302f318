"""The report's verdict (issue 24): one readable line with the key figures at 3-4
significant digits (the full numbers stay in --json); a quick run says it is one in the
text, the JSON and the figure's title; the ics figure's legend shows its dashes; the
lp-norm figure's title names the sub-claims that decided the verdict. Drawn from the
committed full results (docs/experiments/results), so nothing is re-run here."""

import dataclasses
import json
import pathlib
import re

import pytest

from bnfast.experiments import ExperimentResult, names
from bnfast.experiments.result import QUICK_LABEL, verdict_line

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "experiments" / "results"
#: The decimals of a line (counts such as 40,000 are integers).
DECIMAL = re.compile(r"\d*\.\d+")


def _significant(number):
    return len(number.replace(".", "").lstrip("0"))


def _full(name):
    return ExperimentResult.from_dict(json.loads((RESULTS / f"{name}.json").read_text()))


def _quick(result):
    return dataclasses.replace(result, settings={**result.settings, "quick": True})


@pytest.mark.parametrize("name", names())
def test_verdict_is_one_short_readable_line(name):
    result = _full(name)
    line = verdict_line(result)
    version = " (rule v1)" if result.fragility is None else ""   # pre-v2 files say so
    assert line.startswith(f"Verdict: {result.verdict}{version}: ")
    assert "\n" not in line and len(line) <= 300, len(line)
    assert all(_significant(n) <= 4 for n in DECIMAL.findall(line)), line
    assert "{" not in line and "[" not in line     # no Python dict or list
    assert QUICK_LABEL not in line


def test_the_verdict_states_the_rule_s_key_figures():
    assert verdict_line(_full("decoupling")) == (
        "Verdict: supported: 0 violations in 80,000 steps (43,004 with the bound above "
        "rounding); largest gap/bound 0.4134")
    assert verdict_line(_full("explosion")).endswith(
        ": 8 of 8 extrapolated rates within 10% of log lambda(B); residual blocks relieve "
        "7 of 7 cases")
    assert ("M_lp - M_BN (margin): dln (0.171) l1 -0.00209 S, l2 -0.000551 S, linf 0.401 R"
            in verdict_line(_full("lp-norm")))


@pytest.mark.parametrize("name", ["decoupling", "lp-norm"])
def test_a_quick_run_says_so_in_text_and_json(name):
    from bnfast.cli.run import render

    full, quick = _full(name), _quick(_full(name))
    assert QUICK_LABEL in verdict_line(quick)
    text = render(quick)
    assert text.splitlines()[0] == f"Experiment {name} - {QUICK_LABEL}"
    version = " (rule v1)" if quick.fragility is None else ""
    assert f"Verdict: {quick.verdict}{version} [{QUICK_LABEL}]" in text
    assert QUICK_LABEL not in render(full)
    assert quick.to_dict()["quick"] is True and full.to_dict()["quick"] is False


def _drawn(monkeypatch, tmp_path, result):
    """The figure plot_experiment draws for ``result`` (caught before it is saved)."""
    pytest.importorskip("matplotlib")
    import bnfast.plot.experiments as figures

    caught = {}
    monkeypatch.setattr(figures, "save_and_close", lambda fig, path: caught.setdefault(
        "fig", fig))
    figures.plot_experiment(result.to_dict(), tmp_path / "x.png")
    return caught["fig"]


def test_a_quick_run_s_figure_says_so(monkeypatch, tmp_path):
    result = _full("decoupling")
    fig = _drawn(monkeypatch, tmp_path, _quick(result))
    assert fig._suptitle.get_text().startswith(QUICK_LABEL)
    fig = _drawn(monkeypatch, tmp_path, result)
    assert QUICK_LABEL not in fig._suptitle.get_text()


def test_lp_norm_title_names_what_decided_the_verdict(monkeypatch, tmp_path):
    result = _full("lp-norm")
    title = _drawn(monkeypatch, tmp_path, result)._suptitle.get_text()
    assert f"Verdict: {result.verdict.label}" in title
    for problem in ("dln", "mnist1d", "digits-images"):
        assert f"{problem}: l1 supported, l2 supported, linf refuted" in title


def test_ics_legend_shows_the_dashes(monkeypatch, tmp_path):
    """A dashed or dotted curve's legend handle is long enough to show its pattern:
    at least three periods of it (with a marker in the middle, two hide the gap)."""
    fig = _drawn(monkeypatch, tmp_path, _full("ics"))
    checked = 0
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        length = legend.handlelength * legend.prop.get_size_in_points()
        for handle in legend.legend_handles:
            offset, pattern = handle._dash_pattern
            if pattern:                           # not a solid line
                checked += 1
                assert length >= 3 * sum(pattern), (ax.get_title(), handle.get_label())
    assert checked >= 10
