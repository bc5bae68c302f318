"""`bnfast report PATH.html [--results DIR] [--asv DIR] [--overwrite]`: one static,
self-contained HTML page of what bnfast finds, readable offline (no script, no external
style, font or image: the figures are embedded PNGs).

The page holds: `bnfast verify`'s verdict and argument with its figure; the audit table
(Santurkar et al.'s section 4, scale invariance, the l1 constant); Lemma 4.5's failure
law (a sweep measured now on Example 3.2's data, and the per-data-set figure of
docs/search when present); every
experiment's verdict with its rule, the numbers the rule used and its figure (the
NAME.json and NAME.png of `bnfast run NAME --json` / `--plot` in --results DIR); the
MNIST-1D table (mnist1d.json there); and, with --asv DIR (an asv results directory,
e.g. benchmarks/results), the ratio benchmarks of the newest run on each machine.

The results directory defaults to docs/experiments/results under the current directory,
else under the source tree bnfast was installed from. Exit codes: 0 written; 2 usage
errors (PATH exists without --overwrite, its folder is missing or not writable, a
directory option that does not exist), before any work is done.
"""

import base64
import datetime
import html
import itertools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from . import _options as options

__all__ = ["register", "run", "write_report"]

#: The units of the benchmarks the page shows: ratios of two timings (asv's track_*).
RATIO_UNITS = ("ratio", "x")

#: The initializations of the failure-law sweep on Example 3.2 (about 5 s on 2 cores).
FAILURE_LAW_INSTANCES = 400_000


def register(subparsers):
    parser = subparsers.add_parser(
        "report", help="write one self-contained offline HTML page of what bnfast finds",
        description="Writes one static HTML file with no external resource (figures "
                    "embedded): verify's verdict, the audit table, Lemma 4.5's failure "
                    "law, every experiment's verdict with its rule and figure, the "
                    "MNIST-1D table and, with --asv, the benchmark ratios.")
    parser.add_argument("path", metavar="PATH.html", help="the page to write")
    parser.add_argument("--results", metavar="DIR",
                        help="the experiments' results: NAME.json (bnfast run NAME --json), "
                             "NAME.png, mnist1d.json (default: docs/experiments/results "
                             "of the current directory or of bnfast's source tree)")
    parser.add_argument("--asv", metavar="DIR",
                        help="an asv results directory (e.g. benchmarks/results): the "
                             "ratio benchmarks of the newest run on each machine")
    options.add_overwrite(parser, "PATH.html")
    parser.set_defaults(run=run)


def default_results_dir():
    """docs/experiments/results under the current directory, else under the source tree
    of this bnfast (an editable install or a checkout); None when neither exists."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "docs" / "experiments" / "results"
        if candidate.is_dir():
            return candidate
    return None


def run(args):
    path = Path(args.path)
    if path.suffix.lower() not in (".html", ".htm"):
        return options.fail(args, f"PATH must end in .html, got {args.path!r}")
    try:
        options.check_file(args, "PATH.html", args.path)
    except ValueError as exc:
        return options.fail(args, str(exc))
    for flag, value in (("--results", args.results), ("--asv", args.asv)):
        if value is not None and not Path(value).is_dir():
            return options.fail(args, f"{flag}: {value} is not a directory")
    results = Path(args.results) if args.results is not None else default_results_dir()
    start = time.perf_counter()
    page = write_report(path, results_dir=results,
                        asv_dir=None if args.asv is None else Path(args.asv),
                        failure_law_instances=FAILURE_LAW_INSTANCES)
    print(f"wrote {args.path} ({len(page.encode()) // 1024} KiB, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def write_report(path, results_dir=None, asv_dir=None,
                 failure_law_instances=FAILURE_LAW_INSTANCES):
    """Builds the page and writes it to ``path`` atomically (bnfast._files: a file
    beside it, then renamed over it); returns the HTML text."""
    from .._files import replace_atomically

    sections = [_verify_section(), _audit_section(),
                _failure_law_section(failure_law_instances),
                _experiments_section(results_dir), _mnist1d_section(results_dir),
                _benchmarks_section(asv_dir)]
    page = _page(sections, results_dir, asv_dir)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
    replace_atomically(path, write)
    return page


# ---- pieces of HTML ------------------------------------------------------------------

def _e(text):
    return html.escape(str(text), quote=True)


def _png(data, alt):
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _png_file(path, alt):
    return _png(Path(path).read_bytes(), alt)


def _figure(draw, alt):
    """A figure drawn now by draw(path) (matplotlib), embedded; a note when it cannot
    be drawn (no matplotlib)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "figure.png")
        try:
            draw(target)
        except ImportError as exc:
            return f'<p class="note">(figure not drawn: {_e(exc)})</p>'
        return _png_file(target, alt)


def _table(head, rows, classes=None):
    """An HTML table; classes: one CSS class per row (or None)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _verdict_badge(verdict):
    word = str(verdict)
    return f'<span class="verdict v-{_e(word.lower())}">{_e(word)}</span>'


def _round(value):
    """Numbers for the page: 4 significant digits; containers element-wise."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def _section(anchor, title, body):
    return anchor, title, f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


# ---- the sections ----------------------------------------------------------------------

def _verify_section():
    from ..claims import example_3_2
    from . import verify

    report = example_3_2()
    verdict = (verify.VERDICT if report.holds is False
               else "Example 3.2 does NOT refute Lemma 4.5 (unexpected: a bug).")

    def draw(target):
        from ..plot import plot_example_3_2
        plot_example_3_2(target, report)
    body = (f'<p class="headline" id="verify-verdict">{_e(verdict)}</p>\n'
            f"<p>Command: <code>bnfast verify</code> (exact arithmetic: <code>bnfast "
            f"verify --exact</code>).</p>\n"
            f"<details><summary>The argument, step by step</summary>\n"
            f"<pre>{_e(verify.render(report))}</pre></details>\n"
            + _figure(draw, "Example 3.2: the loss landscapes"))
    return _section("verify", "verify: Lemma 4.5 against Example 3.2", body)


def _audit_section():
    from ..claims import audit as claims_audit

    rows = claims_audit.audit(None, exact=False, seed=0)
    head = ["statement", "form", "verdict", "checked", "evidence"]
    table, classes = [], []
    for r in rows:
        d = r.to_dict()
        if r.counterexample is not None:
            instance = " ".join(f"{k}={json.dumps(v)}".replace(" ", "")
                                for k, v in d["counterexample"]["instance"].items())
            forms = d.get("exact_forms") or {}
            lhs, rhs = (forms[k] if len(str(forms.get(k, ""))) in range(1, 25)
                        else _round(d.get(k)) for k in ("lhs", "rhs"))
            violated = "!=" if r.relation == "=" else ">"
            evidence = f"lhs {lhs} {violated} rhs {rhs} at {instance}"
        elif r.verdict == "identity":
            evidence = "lhs = rhs on every instance"
        else:
            evidence = "lhs <= rhs on every instance"
        notes = " ".join(" ".join(r.notes).split())
        if notes:
            evidence += f" ({notes})"
        table.append([r.statement, r.form, {"fails": "FAILS"}.get(r.verdict, r.verdict),
                      r.instances, evidence])
        classes.append(f"v-{r.verdict}")
    body = ("<p>Command: <code>bnfast audit</code>. Santurkar et al. (2018), section 4; "
            "the scale invariance of BN weights (Arora, Li and Lyu 2019); the l1 "
            "batch-norm constant (Hoffer et al. 2018); checked on small integer "
            "instances; failures re-checked in exact arithmetic and shrunk. "
            "<em>checked</em>: instances checked (for a failing row: drawn until the "
            "first failure).</p>\n" + _table(head, table, classes))
    return _section("audit", "audit: Santurkar et al. (2018) section 4, scale invariance, "
                    "the l1 constant", body)


def _failure_law_section(n):
    from ..search import lemma_4_5

    r = lemma_4_5(n, data="example-3-2", seed=0, progress=False)
    fails_premise = (r.premise - r.holds) / max(r.premise, 1)
    fails_all = (r.premise - r.holds) / max(r.instances, 1)
    lo, hi = r.ci
    rows = [["initializations W0 (isotropic)", f"{r.instances:,}"],
            ["with the premise <W0, W*> > 0", f"{r.premise:,}"],
            ["(1) holds, of those with the premise", f"{r.holds:,}"],
            ["rate at which (1) holds given the premise", f"{r.rate:.4f}"],
            ["95% interval", f"[{lo:.4f}, {hi:.4f}]"],
            ["closed form 1/2 - theta/(2 pi)", f"{float(r.predicted):.5f}"],
            ["(1) fails: share of the initializations with the premise",
             f"{100 * fails_premise:.1f}%"],
            ["(1) fails: share of all initializations", f"{100 * fails_all:.1f}%"]]
    body = [f"<p>Command: <code>bnfast search lemma-4-5 --data example-3-2 --instances "
            f"{n}</code> (seed 0). Lemma 4.5 claims (1) for every initialization with "
            "<code>&lt;W0, W*&gt; &gt; 0</code>; on Example 3.2's data it fails for about "
            "half of those (about a quarter of all initializations).</p>",
            _table(["quantity", "value"], rows)]
    figure = _source_tree_file("docs/search/failure_law.png")
    if figure is not None:
        body.append("<p>Per data set (<code>bnfast search lemma-4-5 --plot "
                    "docs/search/failure_law.png</code>): the measured rate against the "
                    "data set's closed form.</p>")
        body.append(_png_file(figure, "Lemma 4.5's failure law per data set"))
    return _section("failure-law", "Lemma 4.5's failure law", "\n".join(body))


def _source_tree_file(relative):
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / relative
        if candidate.is_file():
            return candidate
    return None


def _experiment_files(results_dir):
    """[(name, result dict, figure path or None)] of the experiments in results_dir."""
    out = []
    if results_dir is None:
        return out
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "verdict" not in data or "experiment" not in data:
            continue
        figure = path.with_suffix(".png")
        out.append((data["experiment"], data, figure if figure.is_file() else None))
    return out


def _verdict_text(data):
    """The verdict as the run printed it, with its rule version (result.verdict_text)."""
    from ..experiments.result import ExperimentResult, verdict_text
    return verdict_text(ExperimentResult.from_dict(data))


def _fragility_text(data):
    from ..experiments.result import fragility_line
    return "Fragility: " + fragility_line(data.get("fragility"))


def _experiments_section(results_dir):
    found = _experiment_files(results_dir)
    if not found:
        where = results_dir if results_dir is not None else "docs/experiments/results"
        body = (f'<p class="note">No experiment results in {_e(where)}: '
                "<code>bnfast run NAME --json &gt; DIR/NAME.json</code> and "
                "<code>--plot DIR/NAME.png</code> write them.</p>")
        return _section("experiments", "Experiments: the empirical claims", body)
    summary = [[name, data["verdict"], _verdict_text(data),
                "quick" if data.get("settings", {}).get("quick") else "full",
                f"{data.get('seconds', float('nan')):.0f} s"]
               for name, data, _ in found]
    body = [f"<p>From {_e(results_dir)} (<code>bnfast run NAME --json</code>). Every rule "
            "was fixed before the run.</p>",
            _table(["experiment", "verdict", "what it says (rule version)", "set-up",
                    "run time"], summary, [f"v-{row[1]}" for row in summary])]
    for name, data, figure in found:
        quick = data.get("settings", {}).get("quick")
        inputs = data.get("measurements", {}).get("verdict_inputs", {})
        body += [f'<article id="exp-{_e(name)}">',
                 f"<h3>{_e(name)} {_verdict_badge(data['verdict'])}"
                 + (' <span class="note">(quick run)</span>' if quick else "") + "</h3>",
                 f'<blockquote>{_e(data.get("claim", ""))}</blockquote>',
                 f'<p class="source">{_e(data.get("source", ""))}</p>',
                 f'<p><strong>Rule (version {_e(data.get("rule_version", 1))}'
                 + (f', sha256 <code>{_e(data["rule_hash"][:12])}</code>'
                    if data.get("rule_hash") else "") + ').</strong> '
                 f'{_e(data.get("rule", ""))}</p>',
                 f'<p class="note">{_e(_fragility_text(data))}</p>',
                 "<details><summary>The numbers the rule used (4 significant digits; "
                 "the full ones are in the JSON)</summary>",
                 f"<pre>{_e(json.dumps(_round(inputs), indent=1))}</pre></details>"]
        if figure is not None:
            body.append(_png_file(figure, f"the {name} experiment's figure"))
        body.append("</article>")
    return _section("experiments", "Experiments: the empirical claims", "\n".join(body))


def _markdown_table(text):
    """The rows of a simple pipe table (header first, the --- line dropped)."""
    rows = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            continue
        rows.append(cells)
    return rows


def _mnist1d_section(results_dir):
    path = None if results_dir is None else Path(results_dir) / "mnist1d.json"
    if path is None or not path.is_file():
        body = ('<p class="note">No mnist1d.json: <code>python '
                "docs/experiments/mnist1d_table.py</code> writes it.</p>")
        return _section("mnist1d", "MNIST-1D's table, with and without BN", body)
    data = json.loads(path.read_text())
    rows = _markdown_table(data["table"])
    body = (f"<p>Command: <code>{_e(data.get('command', ''))}</code> "
            f"({_e(data.get('date', ''))}, bnfast {_e(data.get('bnfast_version', ''))}"
            + (", quick run" if data.get("quick") else "") + ").</p>\n"
            + _table(rows[0], rows[1:]))
    return _section("mnist1d", "MNIST-1D's table, with and without BN", body)


def _benchmarks_section(asv_dir):
    title = "Benchmarks: the tracked ratios (asv)"
    if asv_dir is None:
        return _section("benchmarks", title,
                        '<p class="note">No asv results given (<code>bnfast report PATH '
                        "--asv benchmarks/results</code>).</p>")
    units = {}
    index = Path(asv_dir) / "benchmarks.json"
    if index.is_file():
        units = {k: v for k, v in json.loads(index.read_text()).items()
                 if isinstance(v, dict)}
    body = []
    for machine in sorted(p for p in Path(asv_dir).iterdir() if p.is_dir()):
        runs = []
        for f in machine.glob("*.json"):
            if f.name == "machine.json":
                continue
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "results" in data:
                runs.append(data)
        if not runs:
            continue
        newest = max(runs, key=lambda d: d.get("date") or 0)
        rows = _ratio_rows(newest, units)
        date = datetime.datetime.fromtimestamp((newest.get("date") or 0) / 1000,
                                               datetime.timezone.utc)
        body.append(f"<h3>machine {_e(machine.name)}: commit "
                    f"{_e(str(newest.get('commit_hash', ''))[:10])} "
                    f"({date:%Y-%m-%d}), environment {_e(newest.get('env_name', ''))}</h3>")
        body.append(_table(["benchmark", "parameters", "value", "unit"], rows)
                    if rows else '<p class="note">no ratio benchmark in this run</p>')
    if not body:
        body.append(f'<p class="note">No asv results in {_e(asv_dir)}.</p>')
    body.insert(0, "<p>The <code>track_*</code> benchmarks whose unit is a ratio of two "
                   "timings (<code>ratio</code> or <code>x</code>; which way is better is "
                   "in each benchmark's docstring and docs/design/performance.md), from "
                   "the newest run on each machine.</p>")
    return _section("benchmarks", title, "\n".join(body))


def _ratio_rows(run, units):
    columns = run.get("result_columns", ["result", "params"])
    rows = []
    for name, entry in sorted(run["results"].items()):
        if ".track_" not in name:
            continue
        unit = units.get(name, {}).get("unit", "")
        if unit not in RATIO_UNITS:
            continue
        fields = dict(zip(columns, entry)) if isinstance(entry, list) else {}
        values, params = fields.get("result"), fields.get("params") or []
        if values is None:
            continue
        combos = list(itertools.product(*params)) if params else [()]
        for combo, value in zip(combos, values):
            shown = "failed" if value is None else f"{value:.3g}"
            rows.append([name, ", ".join(str(p) for p in combo), shown, unit])
    return rows


# ---- the page ------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 1em auto; padding: 0 1em;
       color: #111; background: #fff; line-height: 1.4; }
h1 { border-bottom: 3px solid #333; }
h2 { border-bottom: 1px solid #999; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #e8e8e8; }
tr.v-fails td, tr.v-refuted td { background: #fde0dc; }
tr.v-holds td, tr.v-identity td, tr.v-supported td { background: #e3f4e1; }
tr.v-inconclusive td, tr.v-mixed td, tr.v-underpowered td { background: #fff6d5; }
.verdict { padding: 0.1em 0.5em; border-radius: 0.3em; color: #fff; background: #666; }
.v-refuted.verdict, .v-fails.verdict { background: #c0392b; }
.v-supported.verdict { background: #27864a; }
.v-inconclusive.verdict, .v-mixed.verdict, .v-underpowered.verdict { background: #b7950b; }
.headline { font-size: 1.2em; font-weight: bold; background: #fde0dc; padding: 0.5em; }
.note { color: #666; }
.source { color: #444; font-size: 0.9em; }
blockquote { border-left: 4px solid #ccc; margin: 0.5em 0; padding-left: 1em; }
pre { background: #f4f4f4; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
nav a { margin-right: 1em; }
"""


def _page(sections, results_dir, asv_dir):
    from .. import __version__

    now = datetime.datetime.now(datetime.timezone.utc)
    nav = " ".join(f'<a href="#{a}">{_e(t.split(":")[0])}</a>' for a, t, _ in sections)
    command = "bnfast " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(
        "bnfast") else "bnfast report"
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>bnfast report {_e(__version__)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>bnfast: what the lab found</h1>",
        f"<p>bnfast {_e(__version__)}, written {now:%Y-%m-%d %H:%M} UTC by "
        f"<code>{_e(command)}</code>. Experiments from "
        f"{_e(results_dir if results_dir is not None else '(none)')}; benchmarks from "
        f"{_e(asv_dir if asv_dir is not None else '(none)')}. This page loads nothing: "
        "every figure is embedded.</p>",
        f"<nav>{nav}</nav>",
        *(body for _, _, body in sections),
        "</body></html>", ""])
