"""landscape: BatchNorm makes the optimization landscape smoother (Santurkar et al. 2018,
section 3.2, appendix A.2.2, Figure 4; Figures 9-10 for the deep linear network).

Version 3 (docs/experiments/landscape.md): the papers' architecture family, each net
trained with and without BN from the same data, initial weights, batch order and
measurement rows: Santurkar's 25-layer deep linear network (full-batch gradient
descent, the paper's own), a Conv1d BN network on MNIST-1D and a Conv2d BN network on
the 8x8 digits (softmax cross-entropy, momentum SGD; problems.py), and, reported only,
the dense digits MLP of versions 1-2. At checkpoints along training, the measures of
measures.py along the gradient (the loss band, the gradient change, the effective
beta-smoothness) and the curvature controls: the largest Hessian eigenvalue against the
stability threshold (edge of stability) and the effective learning rate lr / ||W||^2 of
the scale-invariant (BN'd) layers. The rule judges seeds (one number per seed), never
checkpoints.
"""

import numpy as np

from .measures import (downsample, edge_of_stability, effective_learning_rates,
                       finite_or_none, gradient_line_measures, largest_hessian_eigenvalue,
                       matched_loss, measured_training, measurement_batch,
                       stability_threshold, step_sizes)
from .problems import build, paired_tasks, recipe, recipe_optimizer
from . import stats
from .result import combine
from .spec import Experiment, derived_seed

__all__ = ["EXPERIMENT"]

#: The compared configurations: the BN layer's norm (None: no BN).
CONFIGS = {"standard": None, "bn": "std"}
#: The measures the verdict judges (raw values, as the paper plots them).
JUDGED = ("loss_range", "grad_change_max", "beta")
#: Measures compared the same way but reported, not judged.
REPORTED = ("relative_loss_range", "relative_grad_change", "hessian_max")
#: The judged problems (the DLN is the paper's own; the CNNs the papers' architecture
#: family) and the reported extra (the dense MLP of versions 1-2).
JUDGED_PROBLEMS = ("dln", "mnist1d", "digits-images")
EXTRA_PROBLEMS = ("digits",)
#: Each problem's setting, in words.
SETTINGS = {"dln": "the 25-layer deep linear network",
            "mnist1d": "the MNIST-1D Conv1d network",
            "digits-images": "the digits Conv2d network",
            "digits": "the dense digits MLP (squared loss)"}
#: The reduced stand-ins for the paper's VGG on CIFAR-10 among the judged problems: a
#: refutation from these alone reads "refuted in" them.
REDUCED = ("mnist1d", "digits-images")
REDUCED_SETTING = ("the small CNNs (MNIST-1D Conv1d, digits Conv2d; cross-entropy, "
                   "momentum SGD)")

#: Version 3's parameters (the single source of the full run; hashed with the rule's
#: text). Per problem: lr, momentum (0: plain (S)GD), batch_size (None: full batch),
#: steps, every (checkpoint spacing), record_every (learning-set loss), multipliers and
#: spacing of the step sizes along the gradient (in units of lr), measure_rows (None:
#: the whole learning set; an int: a fixed random subset per seed).
RULE_PARAMS = {
    "seeds": 10, "alpha": 0.05, "early_fraction": 0.5,
    "per_seed_summary": "median over the early checkpoints of log(BN / standard)",
    "judged_problems": list(JUDGED_PROBLEMS), "reported_problems": list(EXTRA_PROBLEMS),
    "judged_measures": list(JUDGED),
    "line_points": 10, "power_iterations": 20,
    "edge_band_low": 0.9, "edge_checkpoint_share": 0.5, "edge_seed_share": 0.5,
    "alternative_windows": {"first quarter": 0.25, "every checkpoint": 1.0},
    "matched_loss_levels": 5,
    "dln": {"lr": 1e-6, "momentum": 0.0, "batch_size": None, "steps": 1500,
            "every": 100, "record_every": 1, "multipliers": [0.01, 30],
            "spacing": "log", "measure_rows": None},
    "mnist1d": {"lr": 0.05, "momentum": 0.9, "batch_size": 100, "steps": 2000,
                "every": 200, "record_every": 50, "multipliers": [0.5, 4],
                "spacing": "linear", "measure_rows": 500},
    "digits-images": {"lr": 0.05, "momentum": 0.9, "batch_size": 100, "steps": 1000,
                      "every": 100, "record_every": 50, "multipliers": [0.5, 4],
                      "spacing": "linear", "measure_rows": 500},
    "digits": {"lr": 0.1, "momentum": 0.0, "batch_size": 128, "steps": 3000,
               "every": 300, "record_every": 50, "multipliers": [0.5, 4],
               "spacing": "linear", "measure_rows": 500},
}
#: Quick runs: the same code with these numbers (not the experiment's verdict).
QUICK = {"seeds": 2, "line_points": 5, "power_iterations": 6,
         "dln": {"steps": 150, "every": 50},
         "mnist1d": {"steps": 300, "every": 100, "measure_rows": 200},
         "digits-images": {"steps": 150, "every": 50, "measure_rows": 200},
         "digits": {"steps": 300, "every": 50, "measure_rows": 200}}
#: The alternative summaries of the fragility line: name -> (window, statistic,
#: matching). window: a fraction of the run (checkpoints at steps <= it x steps).
ALTERNATIVES = {
    "first quarter instead of the first half": ("first quarter", "median", "step"),
    "every checkpoint instead of the first half": ("every checkpoint", "median", "step"),
    "mean instead of median over checkpoints": ("early", "mean", "step"),
    "matched loss instead of matched step": ("early", "median", "loss"),
}

CLAIM = ("BatchNorm \"makes the optimization landscape significantly smoother\": the "
         "loss changes at a smaller rate and the magnitudes of the gradients are smaller "
         "(better Lipschitzness of the loss), and the gradients are more predictive (better "
         "\"effective\" beta-smoothness), in particular early in training.")
SOURCE = ("Santurkar, Tsipras, Ilyas, Madry (2018), \"How Does Batch Normalization Help "
          "Optimization?\", NeurIPS; section 3.2, appendix A.2.2, Figure 4 (VGG) and the "
          "deep-linear-network landscape figures of appendix B (Figures 9-10).")
_P = RULE_PARAMS
RULE = (
    f"Problems: the 25-layer deep linear network (full-batch gradient descent, lr "
    f"{_P['dln']['lr']:g}, {_P['dln']['steps']} steps: the paper's own), the MNIST-1D "
    f"Conv1d network ({_P['mnist1d']['steps']} steps) and the digits Conv2d network "
    f"({_P['digits-images']['steps']} steps) (softmax cross-entropy, momentum SGD "
    f"{_P['mnist1d']['momentum']:g}, lr {_P['mnist1d']['lr']:g}, batch "
    f"{_P['mnist1d']['batch_size']}: small stand-ins for the paper's VGG on CIFAR-10); "
    "the dense digits MLP of versions 1-2 is reported, not judged. Per judged problem "
    "and measure (loss range along the gradient, largest gradient change along it, "
    "effective beta-smoothness; raw values, as in the paper; step sizes lr x "
    f"{_P['dln']['multipliers']} log-spaced on the DLN, lr x "
    f"{_P['mnist1d']['multipliers']} evenly on the CNNs, {_P['line_points']} of them; "
    "measured on the whole learning set of the DLN and on a fixed set of "
    f"{_P['mnist1d']['measure_rows']} learning rows per seed on the CNNs), BN and "
    "standard nets are compared at the same seed (same data, initial weights, batch "
    "order and measurement rows) and the same step over the early window, fixed in "
    f"advance as the checkpoints at steps <= {_P['early_fraction']:g} x the run's steps "
    f"(step 0 included; checkpoints every {_P['dln']['every']} steps on the DLN, "
    f"{_P['mnist1d']['every']} on MNIST-1D, {_P['digits-images']['every']} on the "
    f"digits). The unit of evidence is the seed ({_P['seeds']} seeds; the checkpoints "
    "of a run are autocorrelated): per seed, the median over its early checkpoints of "
    "log(BN / standard) (a value that overflows, or is missing because its net "
    "diverged, counts as larger; pairs where both do are ties, left out). A cell "
    "supports the claim if BN is smaller in significantly many seeds by the exact "
    f"one-sided sign test (p < {_P['alpha']:g}: at least 9 of 10), refutes it if BN is "
    "larger in significantly many, else it is undecided; no margin (the claim is a "
    "direction): the geometric mean ratio BN / standard over seeds with its 95% t "
    "interval says by how much. Verdict (result.combine over the 9 cells): supported "
    "(refuted) if every cell supports (refutes), mixed if one supports and another "
    "refutes (naming which), else underpowered; a refutation whose refuting cells are "
    "all in the small CNNs reads 'refuted in the small CNNs'. Curvature controls, "
    "reported with the verdict and not changing it: the largest Hessian eigenvalue of "
    "the train-mode loss on the measurement rows (power iteration, at most "
    f"{_P['power_iterations']} products) at every checkpoint against the stability "
    "threshold (2 / lr for gradient descent, (2 + 2 momentum) / lr for momentum SGD); "
    "a configuration sits at the edge of stability on a problem when, in at least "
    f"{_P['edge_seed_share']:.0%} of its seeds, at least {_P['edge_checkpoint_share']:.0%} "
    "of its early checkpoints after step 0 have sharpness >= "
    f"{_P['edge_band_low']:g} x threshold (at or above the edge); then its smoothness "
    "along the gradient is set by the learning rate rather than by BN, and the verdict "
    "line names the problem. The effective learning rate lr / ||W||^2 of BN's "
    "scale-invariant layers is reported. Fragility: the same rule over the first "
    f"quarter of the run (steps <= {_P['alternative_windows']['first quarter']:g} x), "
    "over every checkpoint, with the mean instead of the median, and at matched loss "
    f"instead of matched step (per seed, {_P['matched_loss_levels']} loss levels spaced "
    "geometrically from the smaller of the two nets' step-0 losses on the measurement "
    "rows to the larger of their losses at the end of the early window; at each level "
    "each net's first checkpoint at or below it; the median over the levels).")


def settings(quick):
    """The set-up: quick and full differ in lengths, checkpoints, rows and seeds only
    (RULE_PARAMS, QUICK). Per problem a dict for problems.build and the training loop
    (the DLN's and the MLP's network options, the CNNs' recipes); "problems" the judged
    ones, "extras" the reported ones."""
    def setup(problem):
        values = dict(RULE_PARAMS[problem])
        if quick:
            values.update(QUICK[problem])
        return values

    seeds = QUICK["seeds"] if quick else RULE_PARAMS["seeds"]
    line_points = QUICK["line_points"] if quick else RULE_PARAMS["line_points"]
    power = QUICK["power_iterations"] if quick else RULE_PARAMS["power_iterations"]
    dln = {"depth": 25, "width": 10, "samples": 1000, "loss": "sum", **setup("dln")}
    mnist1d = {**recipe("mnist1d", quick), **setup("mnist1d"), "data": "default"}
    digits_images = {**recipe("digits-images", quick), **setup("digits-images")}
    digits = {"hidden": [100, 100], "activation": "relu", "loss": "mean",
              **setup("digits")}
    rows = {p: s["measure_rows"] for p, s in (("mnist1d", mnist1d),
                                              ("digits-images", digits_images))}
    reduced = [
        f"deep linear network: {dln['steps']} full-batch steps (the paper trains for "
        f"thousands), checkpoints every {dln['every']} steps",
        "the paper's VGG on CIFAR-10 replaced by two CPU-sized convolutional BN networks "
        "of its family (cross-entropy, momentum SGD 0.9, lr 0.05, batch 100): MNIST-1D "
        f"Conv1d, {mnist1d['steps']} steps ({mnist1d['steps'] * 100 // 4000} epochs; "
        "the recipe's full run is 4000), checkpoints every "
        f"{mnist1d['every']}; digits Conv2d, {digits_images['steps']} steps, "
        f"checkpoints every {digits_images['every']}",
        "the CNNs' landscape and Hessian measured on a fixed set of "
        f"{rows['mnist1d']} (MNIST-1D) and {rows['digits-images']} (digits) learning "
        "rows per seed instead of the whole learning set (a Hessian-vector product on "
        "all 4000 MNIST-1D rows costs ~10x; BN's statistics are over those rows)",
        f"{line_points} step sizes along the gradient per checkpoint (the paper does not "
        f"say how many); the Hessian eigenvalue by at most {power} power iterations",
        f"{seeds} seeds per problem" + (" (quick: the sign test cannot decide)"
                                        if quick else ""),
        f"the dense digits MLP (reported, not judged): {digits['steps']} SGD steps, "
        f"checkpoints every {digits['every']}, measured on a fixed set of "
        f"{digits['measure_rows']} learning rows per seed (versions 1-2: a fresh batch of "
        "128 rows per checkpoint)",
    ]
    return {"dln": dln, "mnist1d": mnist1d, "digits-images": digits_images,
            "digits": digits, "problems": list(JUDGED_PROBLEMS),
            "extras": list(EXTRA_PROBLEMS), "line_points": line_points, "seeds": seeds,
            "power_iterations": power, "early_fraction": RULE_PARAMS["early_fraction"],
            "reduced": reduced}


def tasks(settings, seed):
    """One task per (problem, seed index, configuration); BN and standard of a seed
    share data, initial weights, batch order and measurement rows."""
    return paired_tasks(settings, seed, CONFIGS,
                        problems=tuple(settings["problems"]) + tuple(settings["extras"]),
                        line_points=settings["line_points"],
                        power_iterations=settings["power_iterations"])


def run_task(task):
    """Trains one net with checkpoints at steps 0, every, ..., steps; returns (a
    JSON-able dict) its learning-set loss curve, the test accuracy (the classifiers),
    and per checkpoint the landscape measures (gradient_line_measures) on the
    measurement rows, the largest Hessian eigenvalue there ("hessian_max", None where
    it overflows) and the effective learning rates lr / ||W_l||^2 of the BN'd layers
    ("effective_lr", one per layer; [] without BN)."""
    setup = task["setup"]
    net, X, y, test = build(task)
    etas = step_sizes(setup, task["line_points"])
    # the same rows at every checkpoint (the compared nets share them)
    Xm, ym = measurement_batch(X, y, setup["measure_rows"], task["seed"], 0)

    def measure(net, step):
        values = gradient_line_measures(net, Xm, ym, etas)
        values["hessian_max"] = hessian_max(net, Xm, ym, task["power_iterations"],
                                            derived_seed(task["seed"], 3, step))
        values["effective_lr"] = effective_learning_rates(net, setup["lr"])["effective_lr"]
        return values

    optimizer = recipe_optimizer(setup) if setup.get("momentum") else None
    losses, checkpoints, diverged = measured_training(
        net, X, y, setup["lr"], setup["steps"], setup["every"], measure,
        batch_size=setup["batch_size"], seed=derived_seed(task["seed"], 4),
        record_every=setup["record_every"], optimizer=optimizer)
    result = {"problem": task["problem"], "config": task["config"],
              "replicate": task["replicate"], "losses": finite_or_none(downsample(losses)),
              "final_loss": None if diverged is not None else float(losses[-1]),
              "diverged_step": diverged,
              "checkpoints": checkpoints}
    if test is not None:
        X_test, labels_test = test
        if diverged is None:
            result["test_accuracy"] = float(
                np.mean(net.predict(X_test).argmax(1) == labels_test))
        else:
            result["test_accuracy"] = None
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


def threshold_of(setup):
    """The stability threshold of a problem's optimizer: 2 / lr for (S)GD, (2 + 2
    momentum) / lr for heavy-ball momentum (measures.stability_threshold)."""
    return stability_threshold(setup["lr"], setup.get("momentum", 0.0))


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


def seed_log_ratio(pairs, measure, statistic="median"):
    """One seed's summary of BN vs standard over its checkpoint pairs [(standard, bn),
    ...] (a checkpoint None: missing, its net diverged before that step): the median
    (or mean) of log(BN / standard); +inf (-inf) when BN's (the standard net's) value
    overflowed or is missing and the other's is not; pairs where both are are ties,
    left out; None if no pair is left (or pairs is None)."""
    if pairs is None:
        return None
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
    """A cell by the sign test over seeds (stats.sign_test) of the per-seed log ratios
    (None: no value, left out): "supported" if BN is smaller (log ratio < 0) in
    significantly many seeds (one-sided p < alpha), "refuted" if larger in
    significantly many, else "undecided". Returns (outcome, details): the test, the
    per-seed values (None for non-finite), whether p < alpha is reachable with these
    seeds, and the geometric mean ratio BN / standard with its 95% t interval over the
    seeds (None when a seed's value is infinite or fewer than 2 seeds have one)."""
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    values = [v for v in per_seed if v is not None]
    test = stats.sign_test(values)
    outcome = ("supported" if test["p_less"] < alpha else
               "refuted" if test["p_greater"] < alpha else "undecided")
    interval = stats.t_interval(values) if values else {"mean": None, "low": None,
                                                         "high": None}

    def exp(v):
        return None if v is None or not np.isfinite(v) else float(np.exp(v))
    return outcome, {**test, "per_seed_log_ratio": [
        None if v is None or not np.isfinite(v) else v for v in per_seed],
        "reachable": stats.sign_test_reachable(len(values), alpha),
        "geometric_mean_ratio": exp(interval["mean"]),
        "ratio_interval": [exp(interval["low"]), exp(interval["high"])],
        "outcome": outcome}


def verdict_of(cells):
    """Version 3's mapping (result.combine) over the cells {"problem.measure":
    outcome}; a refutation whose refuting cells are all in the small CNNs reads
    "refuted in" them; an underpowered verdict names its undecided cells (up to 3)."""
    refuting = [k for k, v in cells.items() if v == "refuted"]
    undecided = [k for k, v in cells.items() if v not in ("supported", "refuted")]
    in_cnns = bool(refuting) and all(k.split(".")[0] in REDUCED for k in refuting)
    problems = list(dict.fromkeys(k.split(".")[0] for k in cells))
    setting = (REDUCED_SETTING if in_cnns else
               " and ".join(SETTINGS.get(p, p) for p in problems))
    which = (", ".join(undecided) if len(undecided) <= 3
             else f"the {len(undecided)} undecided cells")
    return combine(cells, setting, reduced=in_cnns, decide=(
        f"more seeds for {which}: 9 of 10 seeds of one sign decide"))


def _window_limit(setup, window):
    """The last step of a window ("early": the pre-registered first half; or a name of
    RULE_PARAMS["alternative_windows"]): fraction x the run's steps."""
    fraction = (RULE_PARAMS["early_fraction"] if window == "early"
                else RULE_PARAMS["alternative_windows"][window])
    return fraction * setup["steps"]


def matched_loss_pairs(standard_at, bn_at, steps):
    """The checkpoint pairs of one seed at matched loss over a window.

    standard_at, bn_at : {step: checkpoint} of the two nets (a step absent: that net
        diverged before it); steps : the window's scheduled checkpoint steps, ascending.

    RULE_PARAMS["matched_loss_levels"] levels spaced geometrically from the smaller of
    the two nets' first checkpoint losses to the larger of their last ones (so both
    nets reach every level within the window); at each level, each net's first
    checkpoint at or below it (measures.matched_loss on the checkpoint losses).
    Returns a list of (standard, bn) checkpoint pairs, one per level. A net missing the
    window's last checkpoint (diverged, or its loss overflowed) counts as larger:
    [(standard's last, None)] when only BN does, [(None, BN's last)] when only the
    standard net does; None (no value for this seed) when both do or the losses did not
    fall."""
    def losses(at):
        return np.array([np.inf if at.get(s) is None or at[s]["loss"] is None
                         else at[s]["loss"] for s in steps], dtype=np.float64)

    a, b = losses(standard_at), losses(bn_at)
    last = steps[-1]
    if not np.isfinite(a[-1]) and not np.isfinite(b[-1]):
        return None
    if not np.isfinite(b[-1]):
        return [(standard_at[last], None)]
    if not np.isfinite(a[-1]):
        return [(None, bn_at[last])]
    top, bottom = min(a[0], b[0]), max(a[-1], b[-1])
    if not 0 < bottom < top:
        return None
    levels = np.geomspace(top, bottom, RULE_PARAMS["matched_loss_levels"])
    levels[0], levels[-1] = top, bottom           # exactly reached, not rounded past
    matched = matched_loss(a, b, levels=levels)   # indices into steps (record_every 1)
    return [(standard_at[steps[i]], bn_at[steps[j]])
            for i, j in zip(matched["steps_a"], matched["steps_b"])]


def edge_share(run_checkpoints, setup, limit):
    """One run's share of its checkpoints at steps 0 < step <= limit whose sharpness
    (hessian_max; an overflowed one counts as above) is at or above
    RULE_PARAMS["edge_band_low"] x the stability threshold, with the ratios
    (measures.edge_of_stability; None: no checkpoint in the window)."""
    points = [(c["step"], np.inf if c["hessian_max"] is None else c["hessian_max"])
              for c in run_checkpoints if 0 < c["step"] <= limit]
    if not points:
        return None, []
    steps, values = (np.array(v) for v in zip(*points))
    eos = edge_of_stability((steps, values.astype(np.float64)), setup["lr"],
                            setup.get("momentum", 0.0))
    ratios = np.array([np.inf if r is None else r for r in eos["ratios"]])
    return float(np.mean(ratios >= RULE_PARAMS["edge_band_low"])), eos["ratios"]


def curvature(runs, setup, limit):
    """The curvature controls of one problem: per configuration, each seed's share of
    early checkpoints (after step 0) at or above the edge of stability and its median
    sharpness / threshold over them, whether the configuration sits at the edge (the
    share >= RULE_PARAMS["edge_checkpoint_share"] in at least
    RULE_PARAMS["edge_seed_share"] of its seeds), and the effective learning rate of
    its BN'd layers (median over layers) at step 0 and at the window's end (median over
    seeds)."""
    out = {"threshold": threshold_of(setup)}
    for config, config_runs in runs.items():
        shares, medians, lr0, lr_end = [], [], [], []
        for run in config_runs:
            share, ratios = edge_share(run["checkpoints"], setup, limit)
            shares.append(share)
            finite = [np.inf if r is None else r for r in ratios]
            medians.append(float(np.median(finite)) if finite else None)
            at = {c["step"]: c for c in run["checkpoints"]}
            early = [s for s in at if s <= limit]
            for store, step in ((lr0, 0), (lr_end, max(early) if early else None)):
                rates = [] if step is None else [r for r in at[step]["effective_lr"]
                                                 if r is not None]
                store.append(float(np.median(rates)) if rates else None)
        at_edge_seeds = sum(s is not None and s >= RULE_PARAMS["edge_checkpoint_share"]
                            for s in shares)
        out[config] = {
            "seed_edge_share": shares,
            "seed_median_ratio": [None if m is None or not np.isfinite(m) else m
                                  for m in medians],
            "seeds_at_edge": int(at_edge_seeds), "seeds": len(config_runs),
            "at_edge": bool(config_runs) and
            at_edge_seeds >= RULE_PARAMS["edge_seed_share"] * len(config_runs),
            "median_effective_lr_start": _median(lr0),
            "median_effective_lr_window_end": _median(lr_end)}
    return out


def _median(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(values)) if values else None


def conclude(settings, results):
    """Pairs BN and standard checkpoints by (problem, seed, step) at every scheduled
    step (0, every, ..., steps; a checkpoint missing because its net diverged counts as
    overflowed), applies the rule per judged cell and under each alternative summary,
    and adds the curvature controls. Returns (Verdict, measurements)."""
    by_key = {(r["problem"], r["replicate"], r["config"]): r for r in results}
    problems, verdict_inputs, cells = {}, {}, {}
    alternative_cells = {name: {} for name in ALTERNATIVES}
    judged = list(settings["problems"])
    for problem in judged + list(settings.get("extras", [])):
        setup = settings[problem]
        runs = {config: [by_key[(problem, r, config)] for r in range(settings["seeds"])]
                for config in CONFIGS}
        schedule = list(range(0, setup["steps"] + 1, setup["every"]))
        windows = {name: [s for s in schedule if s <= _window_limit(setup, name)]
                   for name in ("early", *RULE_PARAMS["alternative_windows"])}
        seed_pairs = {name: [] for name in windows}
        seed_pairs["matched loss"] = []
        for standard_run, bn_run in zip(runs["standard"], runs["bn"]):
            standard_at = {c["step"]: c for c in standard_run["checkpoints"]}
            bn_at = {c["step"]: c for c in bn_run["checkpoints"]}
            for name, steps in windows.items():
                # None: that net diverged before this step (its value counts as inf)
                seed_pairs[name].append([(standard_at.get(s), bn_at.get(s))
                                         for s in steps])
            seed_pairs["matched loss"].append(
                matched_loss_pairs(standard_at, bn_at, windows["early"]))
        controls = curvature(runs, setup, _window_limit(setup, "early"))
        edge = [config for config in CONFIGS if controls[config]["at_edge"]]
        comparisons = {}
        for measure in JUDGED + REPORTED:
            outcome, test = seed_cell([seed_log_ratio(pairs, measure)
                                       for pairs in seed_pairs["early"]])
            entry = {"outcome": outcome, **test, "alternatives": {}}
            for name, (window, statistic, matching) in ALTERNATIVES.items():
                pairs = seed_pairs["matched loss" if matching == "loss" else window]
                alt, alt_test = seed_cell([seed_log_ratio(p, measure, statistic)
                                           for p in pairs])
                entry["alternatives"][name] = {
                    "outcome": alt, "negative": alt_test["negative"],
                    "positive": alt_test["positive"], "n": alt_test["n"],
                    "geometric_mean_ratio": alt_test["geometric_mean_ratio"]}
            comparisons[measure] = entry
            if measure not in JUDGED or problem not in judged:
                continue
            key = f"{problem}.{measure}"
            cells[key] = outcome
            for name, alt in entry["alternatives"].items():
                alternative_cells[name][key] = alt["outcome"]
            verdict_inputs[key] = {
                "seeds_bn_smaller": test["negative"], "seeds_bn_larger": test["positive"],
                "sign_test_p_bn_smaller": test["p_less"],
                "sign_test_p_bn_larger": test["p_greater"],
                "significance_reachable": test["reachable"],
                "geometric_mean_ratio": test["geometric_mean_ratio"],
                "ratio_interval": test["ratio_interval"],
                "at_edge_of_stability": edge, "verdict": outcome}
        problems[problem] = {
            "judged": problem in judged, "setting": SETTINGS[problem],
            "comparisons": comparisons, "early_step_limit": _window_limit(setup, "early"),
            "curvature": controls, "at_edge_of_stability": edge,
            "runs": {config: [_run_summary(run, setup) for run in runs[config]]
                     for config in CONFIGS}}
    verdict_inputs["alpha"] = RULE_PARAMS["alpha"]
    alternatives = {name: verdict_of(alt).label for name, alt in alternative_cells.items()}
    alternative_detail = {name: dict(alt) for name, alt in alternative_cells.items()}
    measurements = {"problems": problems, "verdict_inputs": verdict_inputs,
                    "judged": list(JUDGED), "alternatives": alternatives,
                    "alternative_cells": alternative_detail}
    return verdict_of(cells), measurements


def _run_summary(run, setup):
    """The parts of a task's result the report and the figure use; sharpness as the
    ratio to the stability threshold, the effective learning rate as the median over
    the BN'd layers."""
    keys = ("loss", "grad_norm", "loss_min", "loss_max", "loss_range", "grad_change_min",
            "grad_change_max", "beta", "hessian_max")
    checkpoints = run["checkpoints"]
    threshold = threshold_of(setup)
    summary = {"losses": run["losses"], "final_loss": run["final_loss"],
               "diverged_step": run["diverged_step"],
               "steps": [c["step"] for c in checkpoints]}
    summary.update({key: [c[key] for c in checkpoints] for key in keys})
    summary["sharpness_ratio"] = [None if c["hessian_max"] is None
                                  else c["hessian_max"] / threshold for c in checkpoints]
    summary["effective_lr"] = [_median(c["effective_lr"]) for c in checkpoints]
    if "test_accuracy" in run:
        summary["test_accuracy"] = run["test_accuracy"]
    return summary


NAMES = {"loss_range": "loss range along the gradient",
         "grad_change_max": "max gradient change along it",
         "beta": "effective beta-smoothness",
         "relative_loss_range": "loss range / loss (not judged)",
         "relative_grad_change": "gradient change / gradient norm (not judged)",
         "hessian_max": "|largest Hessian eigenvalue| (not judged)"}


def _ratio_text(test):
    ratio, (low, high) = test["geometric_mean_ratio"], test["ratio_interval"]
    if ratio is None:
        return "geometric mean n/a (a seed overflowed or diverged)"
    interval = "" if low is None else f" [{low:.3g}, {high:.3g}]"
    return f"geometric mean {ratio:.3g}{interval}"


def summary(measurements):
    """The terminal report's lines: per problem, the final losses (and test
    accuracies), the curvature controls, and per measure the seeds with BN smaller,
    the sign test and the geometric mean ratio BN / standard with its interval."""
    lines = []
    for problem, block in measurements["problems"].items():
        runs = block["runs"]
        finals = {config: np.median([np.inf if r["final_loss"] is None else r["final_loss"]
                                     for r in runs[config]]) for config in CONFIGS}
        text = (f"{block['setting']}{'' if block['judged'] else ' (reported, not judged)'}"
                f": median final loss standard {finals['standard']:.4g}, BN "
                f"{finals['bn']:.4g}")
        if all("test_accuracy" in r for config in CONFIGS for r in runs[config]):
            accuracy = {config: _median([r["test_accuracy"] for r in runs[config]])
                        for config in CONFIGS}
            text += (f"; test accuracy standard {_pct(accuracy['standard'])}, BN "
                     f"{_pct(accuracy['bn'])}")
        lines.append(text + f"; early = steps <= {block['early_step_limit']:g}")
        controls = block["curvature"]
        for config in CONFIGS:
            c = controls[config]
            ratio = _median(c["seed_median_ratio"])
            lines.append(
                f"  {config}: sharpness / threshold ({controls['threshold']:.4g}) median "
                f"{'n/a' if ratio is None else f'{ratio:.3g}'} over the early checkpoints; "
                f"at or above the edge in {c['seeds_at_edge']}/{c['seeds']} seeds"
                + (" -> AT THE EDGE OF STABILITY (smoothness set by lr)"
                   if c["at_edge"] else "")
                + (f"; effective lr of the BN'd layers {c['median_effective_lr_start']:.3g}"
                   f" at step 0, {c['median_effective_lr_window_end']:.3g} at the "
                   "window's end" if c["median_effective_lr_start"] is not None
                   and c["median_effective_lr_window_end"] is not None else ""))
        matched = "matched loss instead of matched step"
        lines.append("  at matched loss: " + ", ".join(
            f"{measure} BN smaller in {alt['negative']}/{alt['n']} seeds ({alt['outcome']})"
            for measure in JUDGED
            for alt in [block["comparisons"][measure]["alternatives"][matched]]))
        for measure, name in NAMES.items():
            test = block["comparisons"][measure]
            lines.append(f"  {name}: BN smaller in {test['negative']}/{test['n']} seeds "
                         f"(p {test['p_less']:.3g}), larger in {test['positive']} "
                         f"(p {test['p_greater']:.3g}); BN/standard {_ratio_text(test)}"
                         + (f" -> {test['outcome']}" if measure in JUDGED and
                            block["judged"] else ""))
    return lines


#: The judged measures' short names (the verdict line).
SHORT = {"loss_range": "loss range", "grad_change_max": "grad change",
         "beta": "beta"}


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"


def headline(inputs):
    """The verdict's key figures: per judged problem, the seeds with BN smaller out of
    the untied ones for each judged measure, and which configurations sit at the edge
    of stability (version 1: the pooled fractions)."""
    cells = {k: v for k, v in inputs.items() if isinstance(v, dict)}
    if "threshold_most" in inputs:                # version 1: pooled checkpoints
        most = inputs["threshold_most"]
        met = sum(v["verdict"] == "supported" for v in cells.values())
        return (f"BN smaller at >= {most:.3g} of early checkpoints for {met} of "
                f"{len(cells)} measure/problem pairs: " + ", ".join(
                    f"{k} {100 * v['bn_smaller_fraction_early']:.0f}%"
                    for k, v in cells.items()))
    groups = []
    for problem in dict.fromkeys(k.split(".")[0] for k in cells):
        mine = {k.split(".", 1)[1]: v for k, v in cells.items()
                if k.split(".")[0] == problem}
        at_edge = next(iter(mine.values())).get("at_edge_of_stability")
        groups.append(f"{problem} " + ", ".join(
            f"{v['seeds_bn_smaller']}/{v['seeds_bn_smaller'] + v['seeds_bn_larger']}"
            for v in mine.values())
            + (" (at the edge of stability: "
               f"{', '.join('BN' if c == 'bn' else c for c in at_edge)})"
               if at_edge else ""))
    alpha = inputs.get("alpha", RULE_PARAMS["alpha"])
    return (f"BN smaller in k/n seeds ({', '.join(SHORT.get(m, m) for m in JUDGED)}; "
            f"p < {alpha:g}): " + "; ".join(groups))

#: The claim in a few words, for the README's and the report's tables.
TITLE = ("BN makes the loss landscape smoother, early in training (Santurkar et al. "
         "2018, 3.2, Fig. 4)")

EXPERIMENT = Experiment(name="landscape", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=3, rule_params=RULE_PARAMS,
                        settings=settings, tasks=tasks, run_task=run_task,
                        conclude=conclude, summary=summary, headline=headline, order=2,
                        title=TITLE)
