"""The README's table of the experiments' verdicts, generated from their results files
(docs/experiments/results/NAME.json, written by `bnfast run NAME --json`), so that the
README cannot say anything the runs did not.

    python -m bnfast.experiments.results_table [DIR]

prints the block the README holds (its lead-in line with the total run time, then one
row per experiment in `bnfast run --list` order: the claim, the verdict with its rule
version, the setting and the key figures the rule used, the fragility line, the run's
wall time, the figure). tests/test_readme.py checks that the README holds exactly this.
"""

import json
import sys
from pathlib import Path

from .result import ExperimentResult, fragility_line, key_figures, verdict_text
from .runner import experiment, names

__all__ = ["markdown", "read_results"]

#: Where run_all.sh writes the results, relative to the repository root.
RESULTS_DIR = "docs/experiments/results"


def read_results(results_dir):
    """{name: ExperimentResult} of the experiments with a NAME.json in results_dir."""
    found = {}
    for name in names():
        path = Path(results_dir) / f"{name}.json"
        if path.is_file():
            found[name] = ExperimentResult.from_dict(json.loads(path.read_text()))
    return found


def _cell(text):
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _row(name, result):
    spec = experiment(name)
    claim = f"{name}: {spec.title or spec.claim}"
    if result is None:
        return [claim, "not run", f"no {name}.json", "", "", ""]
    verdict = verdict_text(result) + (" [quick run]" if result.quick else "")
    setting = result.verdict.setting
    decided = f"{setting}: {key_figures(result)}" if setting else key_figures(result)
    fragile = result.fragility
    fragility = ("no alternative summary" if fragile is not None and fragile["of"] == 0
                 else fragility_line(fragile))
    figure = f"[{name}.png]({RESULTS_DIR}/{name}.png)"
    return [claim, verdict, decided, fragility, _time(result), figure]


def _time(result):
    """"W min" of wall time, with the tasks' CPU time when the file records it."""
    wall = f"{result.seconds / 60:.1f} min"
    if result.cpu_seconds is None:
        return wall
    return f"{wall} (CPU {result.cpu_seconds / 60:.1f} min)"


def _lead_in(found):
    """The line above the table: where the results come from and what they cost."""
    wall = sum(result.seconds for result in found.values())
    cpu = [result.cpu_seconds for result in found.values() if result.cpu_seconds is not None]
    cost = f"2 cores, {wall / 60:.0f} min of wall time in all"
    if cpu:
        cost += (f"; the tasks' CPU time, {sum(cpu) / 60:.0f} min over the {len(cpu)} runs "
                 "that record it, is their cost whatever else ran on the machine: about "
                 "half of it in wall time on two idle cores")
    return (f"Verdicts of the full runs (seed 0; `docs/experiments/run_all.sh` re-runs them "
            f"all, writes `{RESULTS_DIR}/NAME.json` and `NAME.png` and prints this table; "
            f"{cost}):")


def markdown(results_dir=RESULTS_DIR):
    """The README's block: a lead-in line and the table (a str ending in a newline)."""
    found = read_results(results_dir)
    head = ["claim (source)", "verdict", "what decided it (setting: the rule's figures)",
            "fragility", "time", "figure"]
    lines = [_lead_in(found), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names():
        lines.append("| " + " | ".join(_cell(c) for c in _row(name, found.get(name)))
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    print(markdown(argv[0] if argv else RESULTS_DIR), end="")


if __name__ == "__main__":
    main()
