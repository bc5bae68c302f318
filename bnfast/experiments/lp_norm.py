"""lp-norm: normalizing by the average lp norm (p = 1, 2, inf) instead of the standard
deviation works as well as BN, l1 even better on the deep linear network (Santurkar et
al. 2018, section 3.3, Figure 5; appendix B, Figures 12-13).

Five normalizations (none, std = BN, l1, l2, linf; docs/math/networks.md section 7) on
the 25-layer deep linear network (full batch) and the digits MLP (SGD), several seeds,
each seed's five nets from the same data, initial weights and SGD order. Measured: the
training curves, the distribution shift of the layer inputs over training, and the
landscape measures of measures.py at checkpoints (reported, not judged).
"""

import math

import numpy as np

from ..nn import Network
from .measures import (downsample, finite_or_none, gradient_line_measures,
                       measured_training, measurement_batch, step_sizes)
from .problems import build, paired_tasks
from . import stats
from .result import combine
from .spec import Experiment, derived_seed

__all__ = ["EXPERIMENT"]

#: The normalizations: label -> BatchNorm norm (None: no normalization).
NORMS = {"none": None, "std": "std", "l1": "l1", "l2": "l2", "linf": "linf"}
LP = ("l1", "l2", "linf")
#: Comparable: the lp net's curve metric is at most COMPARABLE x the seed spread above
#: BN's; clearly not comparable above CLEARLY_WORSE x the spread.
COMPARABLE, CLEARLY_WORSE = 2.0, 4.0
#: "Beats"/"larger": the paired mean difference is beyond this many standard errors
#: (version 1, and sub-claim (c), reported).
SIGNIFICANT = 2.0
#: Version 2's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "dln_steps": 1000, "mlp_steps": 2000, "checkpoints": 5,
               "line_points": 8, "alpha": 0.05, "margin_fraction": 0.5,
               "metric": "mean over recorded steps of log10(training loss)"}
#: The settings of the judged conditions: the DLN is the paper's own; the digits MLP a
#: reduced stand-in for its VGG.
SETTINGS = {"dln": "the 25-layer deep linear network",
            "digits": "the dense digits MLP (squared loss)"}
#: The alternative summaries of the fragility line.
ALTERNATIVES = {"log10 of the final loss instead of the curve mean": "final",
                "curve mean over the second half of training": "second_half"}

CLAIM = ("\"all these normalization strategies [lp normalization, p = 1, 2, inf: centre, "
         "then divide by the average lp norm of the activations] offer comparable "
         "performance to BatchNorm. In fact, for deep linear networks, l1-normalization "
         "performs even better than BatchNorm. Note that, qualitatively, the "
         "lp-normalization techniques lead to larger distributional shift (as considered "
         "in [Ioffe and Szegedy]) than the vanilla, i.e., unnormalized, networks, yet they "
         "still yield improved optimization performance.\"")
SOURCE = ("Santurkar, Tsipras, Ilyas, Madry (2018), \"How Does Batch Normalization Help "
          "Optimization?\", NeurIPS; section 3.3 and Figure 5 (VGG and deep linear "
          "network), appendix B Figures 12-13 (landscape of the lp variants).")
RULE = (
    "Curve metric M = the mean over the run's recorded steps of log10(training loss) "
    "(the height of the loss curve on a log scale: lower = trains faster/further); "
    f"{RULE_PARAMS['seeds']} seeds per normalization and problem, paired (same data, "
    "initial weights, SGD order); DLN "
    f"{RULE_PARAMS['dln_steps']:,} full-batch steps, digits MLP {RULE_PARAMS['mlp_steps']:,} "
    "SGD steps. Conditions (version 2): for each problem (the 25-layer DLN, the dense "
    "digits MLP) and p = 1, 2, inf, 'comparable': two one-sided t tests over seeds "
    f"(alpha {RULE_PARAMS['alpha']:g}) of d = M_lp - M_BN against the margin +-"
    f"{RULE_PARAMS['margin_fraction']:g} x BN's mean gain over no normalization "
    "(mean of M_none - M_BN: lp recovers at least half of BN's gain); supported if "
    "the (1 - 2 alpha) interval lies inside the margin or wholly below it (lp better), "
    "refuted if it lies wholly above it, else undecided (also when BN has no gain). "
    "'l1 beats BN on the DLN': supported if the (1 - 2 alpha) t interval of M_l1 - M_BN "
    "lies below 0, refuted if above, else undecided. Verdict: supported (refuted) if "
    "every condition supports (refutes), mixed if one supports and another refutes, "
    "else underpowered; a refutation whose refuting conditions are all on the digits "
    "MLP (a reduced stand-in for the paper's VGG) reads 'refuted in the dense digits "
    "MLP (squared loss)'. The larger distributional shift of the lp nets (the paper "
    "only remarks on it) and the landscape measures (Figures 12-13) are reported, not "
    "judged. Fragility: the same rule on log10 of the final loss and on the curve mean "
    "over the second half of training.")
#: Version 1's rule text (kept for the reading of version-1 results and the registry).
RULE_V1 = (
    "Curve metric M = the mean over the run's recorded steps of log10(training loss) "
    "(the height of the loss curve on a log scale: lower = trains faster/further). "
    "Seed spread s = the pooled within-normalization standard deviation of M across "
    "seeds over BN and the three lp nets (what changing the seed alone does to one run: "
    "the equivalence margin of 'comparable'), per problem. Paired differences are per "
    "seed (same data, initial weights, SGD order). "
    "(a) comparable: for both problems and p = 1, 2, inf, d = mean(M_lp - M_BN); "
    f"supported if every d <= {COMPARABLE:g} s (within the seed spread; better is "
    f"comparable too), refuted if any d > {CLEARLY_WORSE:g} s, else inconclusive. "
    "(b) l1 beats BN on the DLN: d = mean(M_l1 - M_BN), SE its standard error over "
    f"seeds; supported if d < -{SIGNIFICANT:g} SE and l1 is lower on every seed, refuted "
    f"if d > {SIGNIFICANT:g} SE, else inconclusive. "
    "(c) lp shifts the layer-input distributions more than no normalization: shift = "
    "relative 2-Wasserstein distance between the per-unit Gaussian fits (mean, std) of "
    "each layer's input at the start and at the end of training, averaged over layers; "
    "for both problems and every p, d = mean(shift_lp - shift_none); supported if every "
    f"d > {SIGNIFICANT:g} SE, refuted if any d < -{SIGNIFICANT:g} SE, else inconclusive. "
    "Overall: supported if (a), (b), (c) are all supported, refuted if any is refuted, "
    "else inconclusive. The landscape measures of the lp nets (Figures 12-13) are "
    "reported, not judged.")


def settings(quick):
    """The set-up: quick and full differ in lengths, checkpoints and seeds only."""
    reduced = [
        "deep linear network: {dln_steps} full-batch steps at lr 1e-6 (the paper trains "
        "for thousands of steps)",
        "digits MLP (64-100-100-10, ReLU, squared loss on one-hot targets, SGD batch 128, "
        "lr 0.1) instead of the paper's VGG on CIFAR-10; {mlp_steps} steps",
        "{seeds} seeds per normalization and problem",
        "landscape measures at {checkpoints} checkpoints per run, {line_points} step "
        "sizes along the gradient, no Hessian eigenvalue",
    ]
    if quick:
        values = dict(dln_steps=80, mlp_steps=160, seeds=2, checkpoints=2, line_points=4)
    else:
        values = {k: RULE_PARAMS[k] for k in ("dln_steps", "mlp_steps", "seeds",
                                               "checkpoints", "line_points")}
    count = values["checkpoints"]
    return {
        "dln": {"depth": 25, "width": 10, "samples": 1000, "loss": "sum", "lr": 1e-6,
                "steps": values["dln_steps"], "every": values["dln_steps"] // count,
                "batch_size": None, "record_every": 1, "multipliers": [1 / 100, 30],
                "spacing": "log", "init": "glorot"},
        "digits": {"hidden": [100, 100], "activation": "relu", "loss": "mean", "lr": 0.1,
                   "steps": values["mlp_steps"], "every": values["mlp_steps"] // count,
                   "batch_size": 128, "record_every": 10, "multipliers": [1 / 2, 4],
                   "spacing": "linear", "init": "glorot"},
        "norms": list(NORMS), "seeds": values["seeds"],
        "line_points": values["line_points"],
        "reduced": [text.format(**values) for text in reduced],
    }


def tasks(settings, seed):
    """One task per (problem, seed index, normalization); a seed's five nets share data,
    initial weights (the Dense weights; gamma = 1, beta = 0), SGD order and measurement
    batches."""
    return paired_tasks(settings, seed, NORMS, line_points=settings["line_points"])


def layer_inputs(net, X):
    """The inputs of layers 2..L of a plain (no Residual) network: the outputs of the
    first k layers for k = 1..L-1, in train mode (batch statistics over the rows of X),
    as a list of (m, width_k) arrays. Each is the forward pass of the network cut after
    layer k, with the same parameters."""
    params, slices = net.params, net.param_slices
    outputs = []
    for k in range(1, len(net.layers)):
        head = Network(net.layers[:k], loss=net.loss_kind)
        head.params = params[:slices[k - 1].stop]
        outputs.append(head.forward(X))
    return outputs


def distribution_shift(before, after):
    """Per layer, the relative 2-Wasserstein distance between the per-unit Gaussian fits
    of a layer's input before and after training:
    sqrt(mean_j[(mu'_j - mu_j)^2 + (sd'_j - sd_j)^2]) / sqrt(mean_j[mu_j^2 + sd_j^2]),
    mu, sd (width,) the column means and standard deviations. before, after: lists of
    (m, width) arrays. Returns a list of floats (inf where the layer started at 0)."""
    shifts = []
    for a, b in zip(before, after):
        mu0, sd0, mu1, sd1 = a.mean(0), a.std(0), b.mean(0), b.std(0)
        scale = np.sqrt(np.mean(mu0 ** 2 + sd0 ** 2))
        distance = np.sqrt(np.mean((mu1 - mu0) ** 2 + (sd1 - sd0) ** 2))
        shifts.append(float(distance / scale) if scale > 0 else float("inf"))
    return shifts


def run_task(task):
    """Trains one net; returns its loss curve, curve metric, distribution shift,
    landscape measures at checkpoints (and the digits test accuracy)."""
    setup = task["setup"]
    net, X, y, test = build(task)
    etas = step_sizes(setup, task["line_points"])
    # The layer inputs on the learning set (at most 1000 rows: enough for a mean and std).
    probe = X[:1000]
    start_inputs = layer_inputs(net, probe)

    def measure(net, step):
        Xb, yb = measurement_batch(X, y, setup["batch_size"], task["seed"], step)
        values = gradient_line_measures(net, Xb, yb, etas)
        return {key: values[key] for key in ("loss", "grad_norm", "loss_range",
                                             "grad_change_max", "beta")}

    losses, checkpoints, diverged = measured_training(
        net, X, y, setup["lr"], setup["steps"], setup["every"], measure,
        batch_size=setup["batch_size"], seed=derived_seed(task["seed"], 4),
        record_every=setup["record_every"])
    shift = distribution_shift(start_inputs, layer_inputs(net, probe)) \
        if diverged is None else None
    result = {"problem": task["problem"], "config": task["config"],
              "replicate": task["replicate"], "losses": finite_or_none(downsample(losses)),
              "curve_metric": curve_metric(losses) if diverged is None else None,
              "final_loss": float(losses[-1]) if diverged is None else None,
              "diverged_step": diverged, "checkpoints": checkpoints,
              "shift": None if shift is None else float(np.mean(shift)),
              "shift_per_layer": shift}
    if test is not None and diverged is None:
        X_test, labels_test = test
        result["test_accuracy"] = float(np.mean(net.predict(X_test).argmax(1) == labels_test))
    return result


def curve_metric(losses):
    """M = mean of log10(loss) over the recorded steps, losses (n,) positive."""
    return float(np.mean(np.log10(np.asarray(losses, dtype=np.float64))))


def seed_spread(values_by_norm):
    """The pooled within-group standard deviation: sqrt(sum_g sum_i (v_gi - mean_g)^2 /
    sum_g (n_g - 1)) over groups with >= 2 finite values; None if there are none."""
    squares, dof = 0.0, 0
    for values in values_by_norm.values():
        values = np.array([v for v in values if v is not None and np.isfinite(v)])
        if len(values) >= 2:
            squares += float(np.sum((values - values.mean()) ** 2))
            dof += len(values) - 1
    return float(np.sqrt(squares / dof)) if dof else None


def paired(first, second):
    """Paired differences first - second over seeds (lists; None: diverged, counted as
    +inf for first, i.e. worse/larger): {"mean", "se", "all_lower", "n"}; se None for
    fewer than 2 pairs or infinite differences."""
    a = np.array([np.inf if v is None else v for v in first], dtype=float)
    b = np.array([np.inf if v is None else v for v in second], dtype=float)
    with np.errstate(invalid="ignore"):
        d = a - b
    d = np.where(np.isnan(d), 0.0, d)   # both diverged: no difference
    finite = bool(np.all(np.isfinite(d)))
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if finite and len(d) >= 2 else None
    # With a diverged run the mean is that run's infinity; with one side diverged on
    # one seed and the other on another (+inf and -inf) it is undefined (NaN).
    with np.errstate(invalid="ignore"):
        mean = float(np.mean(d))
    return {"mean": mean if np.isfinite(mean) else None, "mean_is": _sign_text(mean),
            "se": se, "all_lower": bool(np.all(d < 0)), "n": int(len(d)),
            "_mean": mean}


def _sign_text(mean):
    if np.isnan(mean):
        return "undefined"
    return "finite" if np.isfinite(mean) else ("+inf" if mean > 0 else "-inf")


def verdict_comparable(differences, spread):
    """(a): differences {(problem, p): paired dict}, spread {problem: s}."""
    outcomes = []
    for (problem, _), diff in differences.items():
        s = spread[problem]
        if s is None or s == 0 or np.isnan(diff["_mean"]):
            outcomes.append("inconclusive")
        elif diff["_mean"] <= COMPARABLE * s:
            outcomes.append("supported")
        elif diff["_mean"] > CLEARLY_WORSE * s:
            outcomes.append("refuted")
        else:
            outcomes.append("inconclusive")
    return _combine(outcomes)


def verdict_beats(diff):
    """(b): l1 minus BN on the DLN's curve metric (negative: l1 lower)."""
    mean, se = diff["_mean"], diff["se"]
    if np.isnan(mean):
        return "inconclusive"
    if se is None:
        if np.isinf(mean):
            return "supported" if mean < 0 and diff["all_lower"] else "refuted"
        return "inconclusive"
    if mean < -SIGNIFICANT * se and diff["all_lower"]:
        return "supported"
    if mean > SIGNIFICANT * se:
        return "refuted"
    return "inconclusive"


def verdict_larger_shift(differences):
    """(c): differences {(problem, p): paired dict of shift_lp - shift_none}."""
    outcomes = []
    for diff in differences.values():
        mean, se = diff["_mean"], diff["se"]
        if se is None:
            outcomes.append("inconclusive")
        elif mean > SIGNIFICANT * se:
            outcomes.append("supported")
        elif mean < -SIGNIFICANT * se:
            outcomes.append("refuted")
        else:
            outcomes.append("inconclusive")
    return _combine(outcomes)


def _combine(outcomes):
    """supported if all supported, refuted if any refuted, else inconclusive."""
    if outcomes and all(o == "supported" for o in outcomes):
        return "supported"
    if "refuted" in outcomes:
        return "refuted"
    return "inconclusive"


def _metric(run, summary):
    """A run's value (lower is better) under a summary; None if it diverged."""
    if run["final_loss"] is None:
        return None
    if summary == "curve":
        return run["curve_metric"]
    if summary == "final":
        return math.log10(run["final_loss"]) if run["final_loss"] > 0 else -math.inf
    losses = [v for v in run["losses"][len(run["losses"]) // 2:] if v is not None]
    return curve_metric(losses) if losses and min(losses) > 0 else None


def judge(metric, alpha=None, margin_fraction=None):
    """Version 2's conditions. metric : {problem: {label: [value per seed]}} (lower is
    better; None: diverged). Returns {condition: {"outcome", ...numbers}}:
    "comparable <problem> <p>" by two one-sided tests over seeds of M_lp - M_BN within
    +- margin_fraction x BN's mean gain over no normalization (an interval wholly below
    -margin: lp better, supported); "l1 beats BN on the DLN" by the one-sided t test
    over seeds of M_l1 - M_BN."""
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    margin_fraction = RULE_PARAMS["margin_fraction"] if margin_fraction is None \
        else margin_fraction

    def diff(problem, a, b):
        out = []
        for x, y in zip(metric[problem][a], metric[problem][b]):
            if x is None and y is None:
                out.append(0.0)
            else:
                out.append((math.inf if x is None else x) - (math.inf if y is None else y))
        return out

    conditions = {}
    for problem in metric:
        gain = diff(problem, "none", "std")            # > 0: BN trains further
        finite = [g for g in gain if math.isfinite(g)]
        mean_gain = sum(finite) / len(finite) if finite else None
        for p in LP:
            entry = {"bn_gain_over_none": mean_gain}
            if mean_gain is None or mean_gain <= 0:
                entry.update(outcome="undecided",
                             reason="BN has no gain over no normalization: no margin")
            else:
                tost = stats.tost(diff(problem, p, "std"), margin_fraction * mean_gain,
                                  alpha)
                entry.update(tost)
                entry["outcome"] = {"equivalent": "supported", "below": "supported",
                                    "above": "refuted"}.get(tost["outcome"], "undecided")
            conditions[f"comparable {problem} {p}"] = entry
    if "dln" in metric:
        interval = stats.t_interval(diff("dln", "l1", "std"), 1.0 - 2.0 * alpha)
        outcome = ("supported" if interval["high"] is not None and interval["high"] < 0
                   else "refuted" if interval["low"] is not None and interval["low"] > 0
                   else "undecided")
        conditions["l1 beats BN on the DLN"] = {**interval, "outcome": outcome}
    return conditions


def verdict_of(conditions):
    """Version 2's mapping (result.combine) over the conditions; a refutation whose
    refuting conditions are all on the digits MLP reads "refuted in" that setting."""
    outcomes = {name: c["outcome"] for name, c in conditions.items()}
    refuting = [name for name, o in outcomes.items() if o == "refuted"]
    only_digits = bool(refuting) and all(" digits " in f" {n} " for n in refuting)
    setting = SETTINGS["digits"] if only_digits else " and ".join(SETTINGS.values())
    return combine(outcomes, setting, reduced=only_digits, decide=(
        "more seeds: an equivalence interval that straddles its margin (half of BN's "
        "gain over no normalization) narrows as 1/sqrt(seeds)"))


def _public(diff):
    return {key: value for key, value in diff.items() if not key.startswith("_")}


def conclude(settings, results):
    """Groups the runs by problem and normalization (in seed order) and applies (a)-(c)."""
    runs = {problem: {label: sorted((r for r in results if r["problem"] == problem
                                     and r["config"] == label),
                                    key=lambda r: r["replicate"])
                      for label in NORMS}
            for problem in ("dln", "digits")}

    def values(problem, label, key):
        return [r[key] for r in runs[problem][label]]

    shifts = {(problem, p): paired(values(problem, p, "shift"),
                                   values(problem, "none", "shift"))
              for problem in runs for p in LP}
    sub_claims = {
        "c_lp_larger_shift_than_none": {
            "verdict": verdict_larger_shift(shifts),
            "differences": {f"{problem}.{p}": _public(d)
                            for (problem, p), d in shifts.items()}},
    }

    def metric(summary):
        return {problem: {label: [_metric(r, summary) for r in runs[problem][label]]
                          for label in NORMS} for problem in runs}
    conditions = judge(metric("curve"))
    verdict = verdict_of(conditions)
    alternatives = {name: verdict_of(judge(metric(summary))).label
                    for name, summary in ALTERNATIVES.items()}
    problems = {}
    for problem in runs:
        problems[problem] = {label: _norm_summary(runs[problem][label], settings[problem])
                             for label in NORMS}
    measurements = {"sub_claims": sub_claims, "problems": problems,
                    "conditions": conditions, "alternatives": alternatives,
                    "verdict_inputs": {"conditions": conditions,
                                       "reported_c_lp_larger_shift_than_none":
                                           sub_claims["c_lp_larger_shift_than_none"]}}
    return verdict, measurements


def _norm_summary(norm_runs, setup):
    """Per normalization: curves per seed, metrics, shift, and the landscape measures."""
    early = [c for run in norm_runs for c in run["checkpoints"]
             if c["step"] <= setup["steps"] / 2]

    def median(key):
        vals = [c[key] for c in early if c[key] is not None]
        return float(np.median(vals)) if vals else None

    summary = {
        "losses": [run["losses"] for run in norm_runs],
        "curve_metric": [run["curve_metric"] for run in norm_runs],
        "final_loss": [run["final_loss"] for run in norm_runs],
        "diverged_step": [run["diverged_step"] for run in norm_runs],
        "shift": [run["shift"] for run in norm_runs],
        "shift_per_layer": [run["shift_per_layer"] for run in norm_runs],
        "checkpoint_steps": [c["step"] for c in norm_runs[0]["checkpoints"]],
        "beta": [[c["beta"] for c in run["checkpoints"]] for run in norm_runs],
        "grad_change_max": [[c["grad_change_max"] for c in run["checkpoints"]]
                            for run in norm_runs],
        "early_median": {key: median(key) for key in ("loss_range", "grad_change_max",
                                                      "beta")},
    }
    if "test_accuracy" in norm_runs[0]:
        summary["test_accuracy"] = [run.get("test_accuracy") for run in norm_runs]
    return summary


def summary(measurements):
    """The terminal report's lines."""
    lines = []
    for problem, label in (("dln", "deep linear network"), ("digits", "digits MLP")):
        lines.append(f"{label}: curve metric M = mean log10 loss (median over seeds), "
                     "distribution shift, early median effective beta-smoothness")
        for norm, block in measurements["problems"][problem].items():
            metric = [v for v in block["curve_metric"] if v is not None]
            shift = [v for v in block["shift"] if v is not None]
            beta = block["early_median"]["beta"]
            text = (f"  {norm:>4}: M {np.median(metric):.3f}" if metric else
                    f"  {norm:>4}: diverged")
            text += f", shift {np.median(shift):.3g}" if shift else ""
            text += f", beta {beta:.3g}" if beta is not None else ""
            if "test_accuracy" in block:
                acc = [v for v in block["test_accuracy"] if v is not None]
                text += f", test accuracy {np.median(acc):.3f}" if acc else ""
            lines.append(text)
    if "conditions" in measurements:
        lines += _condition_lines(measurements["conditions"])
        c = measurements["sub_claims"]["c_lp_larger_shift_than_none"]
        lines.append("(c) lp shift - unnormalized shift (reported, not judged): " + ", ".join(
            f"{k} {_fmt(v['mean'])} (SE {_fmt(v['se'])})"
            for k, v in c["differences"].items()) + f" -> {c['verdict']}")
        return lines
    claims = measurements["sub_claims"]        # a version-1 result
    a = claims["a_comparable_to_bn"]
    lines.append("(a) lp comparable to BN: M_lp - M_BN = " + ", ".join(
        f"{k} {_fmt(v['mean'])}" for k, v in a["differences"].items())
        + "; tolerance 2 x seed spread: " + ", ".join(
        f"{k} {_fmt(v)}" for k, v in a["tolerance"].items()) + f" -> {a['verdict']}")
    b = claims["b_l1_beats_bn_on_dln"]
    lines.append(f"(b) l1 beats BN on the DLN: M_l1 - M_BN = {_fmt(b['difference']['mean'])}"
                 f" (SE {_fmt(b['difference']['se'])}, lower on every seed: "
                 f"{b['difference']['all_lower']}) -> {b['verdict']}")
    c = claims["c_lp_larger_shift_than_none"]
    lines.append("(c) lp shift - unnormalized shift: " + ", ".join(
        f"{k} {_fmt(v['mean'])} (SE {_fmt(v['se'])})" for k, v in c["differences"].items())
        + f" -> {c['verdict']}")
    return lines


def _condition_lines(conditions):
    lines = []
    for name, c in conditions.items():
        interval = (f"[{_fmt(c.get('low'))}, {_fmt(c.get('high'))}]"
                    if c.get("low") is not None else "n/a")
        margin = f" margin +-{_fmt(c['margin'])}" if c.get("margin") is not None else ""
        lines.append(f"{name}: mean {_fmt(c.get('mean'))}, "
                     f"{1 - 2 * RULE_PARAMS['alpha']:.0%} interval {interval}{margin} "
                     f"-> {c['outcome']}")
    return lines


def _fmt(value):
    return "n/a" if value is None else f"{value:.3g}"



def deciding(sub_claims, verdict):
    """The sub-claims that decide ``verdict`` under _combine: the refuted ones for
    "refuted", all for "supported", the inconclusive ones otherwise."""
    if verdict == "supported":
        return list(sub_claims)
    return [name for name, claim in sub_claims.items() if claim["verdict"] == verdict]


#: The sub-claims' short names, as the report and the figure give them.
SUB_CLAIMS = {"a_comparable_to_bn": "(a) lp comparable to BN",
              "b_l1_beats_bn_on_dln": "(b) l1 beats BN on the DLN",
              "c_lp_larger_shift_than_none": "(c) lp inputs shift more than unnormalized"}


def headline(inputs):
    """The verdict's key figures: each sub-claim's verdict with its largest difference,
    and which of them decide the verdict."""
    if "conditions" in inputs:
        parts = []
        for name, c in inputs["conditions"].items():
            parts.append(f"{name.replace('comparable ', '')} {_fmt(c.get('mean'))}"
                         + (f"/{_fmt(c['margin'])}" if c.get("margin") is not None else "")
                         + f" {c['outcome']}")
        return "M_lp - M_BN / margin: " + "; ".join(parts)
    a, b = inputs["a_comparable_to_bn"], inputs["b_l1_beats_bn_on_dln"]
    c = inputs["c_lp_larger_shift_than_none"]
    worst = max((d["mean"] for d in a["differences"].values() if d["mean"] is not None),
                default=None)
    biggest = max((d["mean"] for d in c["differences"].values() if d["mean"] is not None),
                  default=None)
    parts = [f"(a) {a['verdict']} (M_lp - M_BN up to {_fmt(worst)} decades; tolerance "
             + ", ".join(f"{k} {_fmt(v)}" for k, v in a["tolerance"].items()) + ")",
             f"(b) {b['verdict']} (M_l1 - M_BN {_fmt(b['difference']['mean'])}, SE "
             f"{_fmt(b['difference']['se'])})",
             f"(c) {c['verdict']} (lp shift - unnormalized shift at most {_fmt(biggest)})"]
    overall = _combine([claim["verdict"] for claim in inputs.values()])
    decided = [SUB_CLAIMS[n].split()[0] for n in deciding(inputs, overall)]
    return "; ".join(parts) + f"; decided by {', '.join(decided)}"


EXPERIMENT = Experiment(name="lp-norm", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=2, rule_params=RULE_PARAMS,
                        settings=settings, tasks=tasks, run_task=run_task,
                        conclude=conclude, summary=summary, headline=headline, order=4)
