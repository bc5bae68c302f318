"""landscape: BatchNorm makes the optimization landscape smoother (Santurkar et al. 2018,
section 3.2, appendix A.2.2, Figure 4; Figures 9-10 for the deep linear network).

Two problems, each trained with and without BN from the same data and initial weights:
Santurkar's 25-layer deep linear network (full-batch gradient descent) and an MLP on the
digits (mini-batch SGD). At checkpoints along training, the measures of measures.py
along the gradient: the loss band, the gradient change (predictiveness) and the
effective beta-smoothness; also the largest Hessian eigenvalue (reported, not judged).
"""

import numpy as np

from .measures import (downsample, finite_or_none, gradient_line_measures,
                       largest_hessian_eigenvalue, measured_training, measurement_batch,
                       step_sizes)
from .problems import build, paired_tasks
from . import stats
from .result import combine
from .spec import Experiment, derived_seed

__all__ = ["EXPERIMENT"]

#: The compared configurations: the BN layer's norm (None: no BN).
CONFIGS = {"standard": None, "bn": "std"}
#: The measures the verdict judges (raw values, as the paper plots them).
JUDGED = ("loss_range", "grad_change_max", "beta")
#: A measure "mostly" favours BN when BN is smaller at >= this fraction of the early
#: checkpoint pairs; "mostly" against BN at <= 1 - this.
MOST = 2 / 3
#: Early checkpoints: those at steps <= EARLY * the run's steps.
EARLY = 0.5
#: Version 2's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "early_fraction": EARLY, "alpha": 0.05,
               "dln_steps": 1500, "dln_every": 100, "mlp_steps": 3000, "mlp_every": 150,
               "line_points": 10, "power_iterations": 20,
               "per_seed_summary": "median over the early checkpoints of log(BN / standard)"}
#: The settings of the judged cells (the DLN is the paper's own; the digits MLP a
#: reduced stand-in for its VGG).
SETTINGS = {"dln": "the 25-layer deep linear network",
            "digits": "the dense digits MLP (squared loss)"}
#: The alternative summaries of the fragility line: (window, per-seed statistic).
ALTERNATIVES = {"mean instead of median over checkpoints": ("early", "mean"),
                "every checkpoint instead of the first half": ("all", "median"),
                "checkpoints pooled over seeds, BN smaller in >= 2/3 (version 1)":
                    ("early", "pooled")}

CLAIM = ("BatchNorm \"makes the optimization landscape significantly smoother\": the "
         "loss changes at a smaller rate and the magnitudes of the gradients are smaller "
         "(better Lipschitzness of the loss), and the gradients are more predictive (better "
         "\"effective\" beta-smoothness), in particular early in training.")
SOURCE = ("Santurkar, Tsipras, Ilyas, Madry (2018), \"How Does Batch Normalization Help "
          "Optimization?\", NeurIPS; section 3.2, appendix A.2.2, Figure 4 (VGG) and the "
          "deep-linear-network landscape figures of appendix B (Figures 9-10).")
RULE = ("Per problem (the 25-layer DLN; the dense digits MLP, a reduced stand-in for "
        "the paper's VGG) and per measure (loss range along the gradient, largest "
        "gradient change along it, effective beta-smoothness), compare BN and standard "
        "nets at the same step and seed (same data and initial weights) over the early "
        "checkpoints, fixed in advance as those in the first half of the run (steps <= "
        f"{EARLY:g} x total, step 0 included). The unit of evidence is the seed "
        f"({RULE_PARAMS['seeds']} seeds; checkpoints of one run are autocorrelated): per "
        "seed, the median over its early checkpoints of log(BN / standard) (a value that "
        "overflows, or is missing because its net diverged, counts as larger; pairs where "
        "both do are ties, left out). A cell supports the claim if BN is smaller in "
        "significantly many seeds by the exact one-sided sign test (p < "
        f"{RULE_PARAMS['alpha']:g}), refutes it if BN is larger in significantly many, "
        "else it is undecided. Verdict (version 2): supported (refuted) if every cell "
        "supports (refutes), mixed if one supports and another refutes, else "
        "underpowered; a refutation from digits cells only reads 'refuted in the dense "
        "digits MLP (squared loss)'. Raw values, as in the paper; the scale-free variants "
        "and the largest Hessian eigenvalue are reported, not judged. Fragility: the same "
        "rule with the mean instead of the median over checkpoints, with every checkpoint "
        "instead of the first half, and version 1's pooled summary (BN smaller at >= 2/3 "
        "of the early checkpoint pairs pooled over seeds).")
#: Version 1's rule text (the reading of version-1 results and the registry).
RULE_V1 = ("Per problem (DLN, digits MLP) and per measure (loss range along the gradient, "
        "largest gradient change along it, effective beta-smoothness), compare BN and "
        "standard nets at the same step and seed (same data and initial weights) over the "
        "early checkpoints, fixed in advance as those in the first half of the run "
        f"(steps <= {EARLY:g} x total, step 0 included). A cell supports the claim if BN's "
        f"raw value is smaller in at least {MOST:.0%} of those pairs (\"most\"; a value "
        "that overflows, or is missing because its net diverged before that step, counts "
        "as larger; a pair where both overflow or are missing is a tie left out of the "
        "fraction, and the cell is inconclusive if no pair is left), and goes against it "
        f"if BN's is smaller in at most {1 - MOST:.0%}. Verdict: supported if every cell "
        "supports; refuted if any cell goes against; else inconclusive. Raw values, as in "
        "the paper, although the nets' losses differ in scale; the ratios BN/standard "
        "(median over the pairs) say by how much, and the scale-free variants (loss range "
        "/ loss, gradient change / gradient norm) and the largest Hessian eigenvalue are "
        "reported, not judged.")


def settings(quick):
    """The set-up: quick and full differ in lengths, checkpoints and seeds only."""
    reduced = [
        "deep linear network: {dln_steps} full-batch steps (the paper trains for "
        "thousands); checkpoints every {dln_every} steps",
        "digits MLP (64-100-100-10, ReLU, squared loss on one-hot targets, SGD batch 128, "
        "lr 0.1) instead of the paper's VGG on CIFAR-10: a CPU-sized real-data network; "
        "{mlp_steps} steps, checkpoints every {mlp_every}",
        "{line_points} step sizes along the gradient per checkpoint (log-spaced in "
        "[1/100, 30] x lr for the DLN, evenly in [1/2, 4] x lr for the MLP; the paper does "
        "not say how many)",
        "{seeds} seed(s) per problem; the Hessian eigenvalue by at most {power} power "
        "iterations",
    ]
    if quick:
        values = dict(dln_steps=150, dln_every=50, mlp_steps=300, mlp_every=50,
                      line_points=5, seeds=1, power=6)
    else:
        values = {k: RULE_PARAMS[k] for k in ("dln_steps", "dln_every", "mlp_steps",
                                               "mlp_every", "line_points", "seeds")}
        values["power"] = RULE_PARAMS["power_iterations"]
    return {
        "dln": {"depth": 25, "width": 10, "samples": 1000, "loss": "sum", "lr": 1e-6,
                "steps": values["dln_steps"], "every": values["dln_every"],
                "batch_size": None, "record_every": 1, "multipliers": [1 / 100, 30],
                "spacing": "log", "init": "glorot"},
        "digits": {"hidden": [100, 100], "activation": "relu", "loss": "mean", "lr": 0.1,
                   "steps": values["mlp_steps"], "every": values["mlp_every"],
                   "batch_size": 128, "record_every": 10, "multipliers": [1 / 2, 4],
                   "spacing": "linear",
                   "init": "glorot"},
        "line_points": values["line_points"], "seeds": values["seeds"],
        "power_iterations": values["power"], "early_fraction": EARLY,
        "reduced": [text.format(**values) for text in reduced],
    }


def tasks(settings, seed):
    """One task per (problem, seed index, configuration); BN and standard of a seed
    share data, initial weights, SGD order and measurement batches."""
    return paired_tasks(settings, seed, CONFIGS, line_points=settings["line_points"],
                        power_iterations=settings["power_iterations"])


def run_task(task):
    """Trains one net with checkpoints; returns its loss curve and, per checkpoint, the
    landscape measures and the largest Hessian eigenvalue (JSON-able dict)."""
    setup = task["setup"]
    net, X, y, test = build(task)
    etas = step_sizes(setup, task["line_points"])

    def measure(net, step):
        Xb, yb = measurement_batch(X, y, setup["batch_size"], task["seed"], step)
        values = gradient_line_measures(net, Xb, yb, etas)
        values["hessian_max"] = hessian_max(net, Xb, yb, task["power_iterations"],
                                            derived_seed(task["seed"], 3, step))
        return values

    losses, checkpoints, diverged = measured_training(
        net, X, y, setup["lr"], setup["steps"], setup["every"], measure,
        batch_size=setup["batch_size"], seed=derived_seed(task["seed"], 4),
        record_every=setup["record_every"])
    result = {"problem": task["problem"], "config": task["config"],
              "replicate": task["replicate"], "losses": finite_or_none(downsample(losses)),
              "final_loss": None if diverged is not None else float(losses[-1]),
              "diverged_step": diverged,
              "checkpoints": checkpoints}
    if test is not None:
        X_test, labels_test = test
        result["test_accuracy"] = float(np.mean(net.predict(X_test).argmax(1) == labels_test))
    return result


def hessian_max(net, X, y, iterations, seed):
    """largest_hessian_eigenvalue, or None where it is not finite: a Hessian-vector
    product that overflows gives an inf or NaN estimate (or a non-finite next iterate,
    which net.hvp refuses), kept out of the JSON as None like the other measures."""
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            value = largest_hessian_eigenvalue(net, X, y, iterations, seed=seed)
        except ValueError as exc:
            if "must be finite" not in str(exc):
                raise
            return None
    return float(value) if value is not None and np.isfinite(value) else None


def _value(checkpoint, measure):
    """A checkpoint's measure; scale-free variants divide by the loss / gradient norm;
    non-finite (None) becomes inf (it overflowed: larger than anything finite), as does
    a missing checkpoint (None: its net diverged before that step)."""
    if checkpoint is None:
        return np.inf
    if measure == "relative_loss_range":
        top, bottom = checkpoint["loss_range"], checkpoint["loss"]
    elif measure == "relative_grad_change":
        top, bottom = checkpoint["grad_change_max"], checkpoint["grad_norm"]
    elif measure == "hessian_max":
        top, bottom = checkpoint["hessian_max"], 1.0
        top = None if top is None else abs(top)
    else:
        top, bottom = checkpoint[measure], 1.0
    if top is None or bottom is None or bottom == 0:
        return np.inf
    return top / bottom


def compare(pairs, measure):
    """BN vs standard on ``measure`` over checkpoint pairs [(standard, bn), ...] (a
    checkpoint None: missing, its net diverged before that step):
    {"pairs", "both_infinite" (pairs where both values overflowed or are missing: ties
    left out of the fraction), "bn_smaller_fraction" (over the other pairs; None if there
    are none), "median_ratio" (BN / standard over the pairs where it is finite, None if
    there are none)}."""
    standard = np.array([_value(s, measure) for s, _ in pairs], dtype=np.float64)
    bn = np.array([_value(b, measure) for _, b in pairs], dtype=np.float64)
    decided = ~(np.isinf(standard) & np.isinf(bn))
    smaller = bn[decided] < standard[decided]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = bn / standard
    ratios = ratios[np.isfinite(ratios)]
    return {"pairs": int(len(pairs)), "both_infinite": int(len(pairs) - decided.sum()),
            "bn_smaller_fraction": float(np.mean(smaller)) if smaller.size else None,
            "median_ratio": float(np.median(ratios)) if len(ratios) else None}


def seed_log_ratio(pairs, measure, statistic="median"):
    """One seed's summary of BN vs standard over its checkpoint pairs: the median (or
    mean) of log(BN / standard); +inf (-inf) when BN's (the standard net's) value
    overflowed or is missing and the other's is not; pairs where both are are ties,
    left out; None if no pair is left."""
    logs = []
    for standard, bn in pairs:
        a, b = _value(standard, measure), _value(bn, measure)
        if np.isinf(a) and np.isinf(b):
            continue
        if np.isinf(b) or a <= 0:
            logs.append(np.inf if not np.isinf(a) else -np.inf)
        elif np.isinf(a) or b <= 0:
            logs.append(-np.inf)
        else:
            logs.append(float(np.log(b / a)))
    if not logs:
        return None
    logs = np.asarray(logs)
    if statistic == "mean":
        with np.errstate(invalid="ignore"):
            value = float(np.mean(logs))
        return None if np.isnan(value) else value
    return float(np.median(logs))


def seed_cell(per_seed, alpha=None):
    """A cell by the sign test over seeds (stats.sign_test): "supported" if BN is
    smaller (log ratio < 0) in significantly many seeds (one-sided p < alpha),
    "refuted" if larger in significantly many, else "undecided"."""
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    values = [v for v in per_seed if v is not None]
    test = stats.sign_test(values)
    outcome = ("supported" if test["p_less"] < alpha else
               "refuted" if test["p_greater"] < alpha else "undecided")
    return outcome, {**test, "per_seed_log_ratio": [
        None if v is None or not np.isfinite(v) else v for v in per_seed],
        "reachable": stats.sign_test_reachable(len(values), alpha), "outcome": outcome}


def verdict_of(cells):
    """Version 2's mapping (result.combine) over the cells {"problem.measure": outcome};
    refutations all on the digits MLP read "refuted in" that setting."""
    refuting = [k for k, v in cells.items() if v == "refuted"]
    only_digits = bool(refuting) and all(k.startswith("digits.") for k in refuting)
    setting = SETTINGS["digits"] if only_digits else " and ".join(SETTINGS.values())
    return combine(cells, setting, reduced=only_digits, decide=(
        "more seeds: the sign test over seeds needs at least 5 seeds to reach p < 0.05 "
        "at all, 10 to tolerate one seed the other way"))


def cell_verdict(fraction):
    """A measure on a problem: "supported" (BN smaller in >= MOST of the early pairs),
    "refuted" (<= 1 - MOST) or "inconclusive"."""
    if fraction is None:
        return "inconclusive"
    if fraction >= MOST:
        return "supported"
    if fraction <= 1 - MOST:
        return "refuted"
    return "inconclusive"


def decide(cells):
    """The overall verdict from the judged cells' verdicts."""
    verdicts = list(cells)
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    if any(v == "refuted" for v in verdicts):
        return "refuted"
    return "inconclusive"


def conclude(settings, results):
    """Pairs BN and standard checkpoints by (problem, seed, step) at every scheduled
    step (0, every, ..., steps; a checkpoint missing because its net diverged counts as
    overflowed) and applies the rule."""
    by_key = {(r["problem"], r["replicate"], r["config"]): r for r in results}
    problems, verdict_inputs, cells = {}, {}, {}
    alternative_cells = {name: {} for name in ALTERNATIVES}
    for problem in ("dln", "digits"):
        setup = settings[problem]
        early_limit = EARLY * setup["steps"]
        early, every_pair = [], []
        seed_pairs = {"early": [], "all": []}
        runs = {config: [by_key[(problem, r, config)] for r in range(settings["seeds"])]
                for config in CONFIGS}
        schedule = range(0, setup["steps"] + 1, setup["every"])
        for standard_run, bn_run in zip(runs["standard"], runs["bn"]):
            standard_at = {c["step"]: c for c in standard_run["checkpoints"]}
            bn_at = {c["step"]: c for c in bn_run["checkpoints"]}
            seed_early, seed_all = [], []
            for step in schedule:
                # None: that net diverged before this step (its value counts as inf)
                pair = (standard_at.get(step), bn_at.get(step))
                every_pair.append(pair)
                seed_all.append(pair)
                if step <= early_limit:
                    early.append(pair)
                    seed_early.append(pair)
            seed_pairs["early"].append(seed_early)
            seed_pairs["all"].append(seed_all)
        comparisons = {}
        for measure in JUDGED + ("relative_loss_range", "relative_grad_change",
                                 "hessian_max"):
            early_result = compare(early, measure)
            entry = {"early": early_result, "all": compare(every_pair, measure)}
            if measure in JUDGED:
                key = f"{problem}.{measure}"
                outcome, test = seed_cell([seed_log_ratio(pairs, measure)
                                           for pairs in seed_pairs["early"]])
                entry["verdict"] = outcome
                cells[key] = outcome
                for name, (window, statistic) in ALTERNATIVES.items():
                    if statistic == "pooled":
                        alt = cell_verdict(early_result["bn_smaller_fraction"])
                    else:
                        alt = seed_cell([seed_log_ratio(pairs, measure, statistic)
                                         for pairs in seed_pairs[window]])[0]
                    alternative_cells[name][key] = alt
                verdict_inputs[key] = {
                    "seeds_bn_smaller": test["negative"], "seeds_bn_larger": test["positive"],
                    "sign_test_p_bn_smaller": test["p_less"],
                    "sign_test_p_bn_larger": test["p_greater"],
                    "significance_reachable": test["reachable"],
                    "bn_smaller_fraction_early": early_result["bn_smaller_fraction"],
                    "early_pairs": early_result["pairs"],
                    "median_ratio_bn_over_standard": early_result["median_ratio"],
                    "verdict": outcome}
            comparisons[measure] = entry
        problems[problem] = {
            "comparisons": comparisons, "early_step_limit": early_limit,
            "runs": {config: [_run_summary(run) for run in runs[config]]
                     for config in CONFIGS}}
    verdict_inputs["alpha"] = RULE_PARAMS["alpha"]
    alternatives = {name: verdict_of(alt).label for name, alt in alternative_cells.items()}
    measurements = {"problems": problems, "verdict_inputs": verdict_inputs,
                    "judged": list(JUDGED), "alternatives": alternatives}
    return verdict_of(cells), measurements


def _run_summary(run):
    """The parts of a task's result the report and the figure use."""
    keys = ("loss", "grad_norm", "loss_min", "loss_max", "loss_range", "grad_change_min",
            "grad_change_max", "beta", "hessian_max")
    checkpoints = run["checkpoints"]
    summary = {"losses": run["losses"], "final_loss": run["final_loss"],
               "diverged_step": run["diverged_step"],
               "steps": [c["step"] for c in checkpoints]}
    summary.update({key: [c[key] for c in checkpoints] for key in keys})
    if "test_accuracy" in run:
        summary["test_accuracy"] = run["test_accuracy"]
    return summary


def summary(measurements):
    """The terminal report's lines."""
    names = {"loss_range": "loss range along the gradient",
             "grad_change_max": "max gradient change along it",
             "beta": "effective beta-smoothness",
             "relative_loss_range": "loss range / loss (not judged)",
             "relative_grad_change": "gradient change / gradient norm (not judged)",
             "hessian_max": "|largest Hessian eigenvalue| (not judged)"}
    lines = []
    for problem, label in (("dln", "25-layer deep linear network"),
                           ("digits", "digits MLP")):
        block = measurements["problems"][problem]
        # a diverged run's final loss (None) counts as infinite
        finals = {config: np.median([np.inf if r["final_loss"] is None else r["final_loss"]
                                     for r in block["runs"][config]])
                  for config in CONFIGS}
        lines.append(f"{label}: median final loss standard {finals['standard']:.4g}, "
                     f"BN {finals['bn']:.4g}; early = steps <= {block['early_step_limit']:g}")
        for measure, name in names.items():
            early = block["comparisons"][measure]["early"]
            fraction, ratio = early["bn_smaller_fraction"], early["median_ratio"]
            verdict = block["comparisons"][measure].get("verdict")
            text = "n/a" if fraction is None else f"{fraction:.0%}"
            ratio_text = "n/a" if ratio is None else f"{ratio:.3g}"
            ties = early.get("both_infinite", 0)
            counted = early["pairs"] - ties
            lines.append(f"  {name}: BN smaller at {text} of {counted} early "
                         f"checkpoints"
                         + (f" ({ties} with both overflowed or missing left out)"
                            if ties else "")
                         + f", median BN/standard {ratio_text}"
                         + (f" -> {verdict}" if verdict else ""))
    return lines



def headline(inputs):
    """The verdict's key figures: per measure and problem, the fraction of early
    checkpoints at which BN is smaller, against the threshold."""
    pairs = {k: v for k, v in inputs.items() if isinstance(v, dict)}
    if "threshold_most" not in inputs:            # version 2: seeds, sign test
        return "seeds with BN smaller (sign test p): " + ", ".join(
            f"{k} {v['seeds_bn_smaller']}/{v['seeds_bn_smaller'] + v['seeds_bn_larger']} "
            f"(p {v['sign_test_p_bn_smaller']:.3g}, {v['verdict']})"
            for k, v in pairs.items())
    most = inputs["threshold_most"]
    met = sum(v["verdict"] == "supported" for v in pairs.values())
    return (f"BN smaller at >= {most:.3g} of early checkpoints for {met} of {len(pairs)} "
            "measure/problem pairs: " + ", ".join(
                f"{k} {100 * v['bn_smaller_fraction_early']:.0f}%" for k, v in pairs.items()))


EXPERIMENT = Experiment(name="landscape", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=2, rule_params=RULE_PARAMS,
                        settings=settings, tasks=tasks, run_task=run_task,
                        conclude=conclude, summary=summary, headline=headline, order=2)
