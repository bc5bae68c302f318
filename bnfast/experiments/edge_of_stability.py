"""Gradient descent on neural networks typically occurs at the edge of stability
(Cohen, Kaur, Li, Kolter, Talwalkar, ICLR 2021, arXiv:2103.00065).

The claim (abstract and section 3): under full-batch gradient descent with step size
lr, the sharpness (the largest eigenvalue of the Hessian of the training loss) first
rises ("progressive sharpening") until it reaches the stability threshold 2/lr of a
quadratic, and then hovers at (just above) 2/lr while the loss keeps falling,
non-monotonically, over long times ("edge of stability"); the paper shows it for MLPs,
CNNs and Transformers, with and without BN (its appendix on BN networks).

Measured: the sharpness along full-batch gradient descent (bnfast.train with
sharpness_every: Lanczos on exact Hessian-vector products of the full-data, train-mode
loss) divided by the paper's number 2/lr (measures.stability_threshold), for a CNN
(the MNIST-1D Conv1d net of problems.py) and an MLP (64-100-100-10 ReLU on the 8x8
digits), each with BN before every ReLU and without, at three learning rates, on a
subset of the training rows per seed so that a full-batch step is cheap, with the
squared loss on one-hot targets (the paper's main loss; with cross-entropy the
sharpness falls once the loss is small, which the paper reports too).

Per seed the number the rule uses is the median of sharpness/(2/lr) over the records
from the first one at or above the band's low end ("reached") to the end of the run
(measures.edge_of_stability with from_step the first reach); a seed that never reaches
contributes nothing and counts as not reached.
"""

import numpy as np

from ..nn import TrainingDiverged, train
from . import measures
from .problems import digits_data, digits_mlp, mnist1d_cnn, mnist1d_data
from .result import combine, figure
from .spec import Experiment, derived_seed
from .stats import sign_test, t_interval

__all__ = ["EXPERIMENT", "hover_value", "run_task", "verdict_of"]

CLAIM = ("Under full-batch gradient descent with step size lr, the sharpness (the top "
         "eigenvalue of the training loss's Hessian) rises until it reaches about 2/lr "
         "and then hovers at that value (progressive sharpening, then the edge of "
         "stability), for networks with and without batch normalization.")
SOURCE = ("Cohen, Kaur, Li, Kolter, Talwalkar, 'Gradient descent on neural networks "
          "typically occurs at the edge of stability', ICLR 2021 (arXiv:2103.00065), "
          "abstract, section 3 and figure 1; the BN networks of its appendix.")
TITLE = ("Full-batch GD sharpness rises to 2/lr and hovers there, with and without BN "
         "(Cohen et al. 2021)")

NETWORKS = ("cnn", "mlp")
NORMS = ("bn", "none")
#: The rule's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "rows": 400, "steps": 500, "sharpness_every": 20,
               "lrs": {"cnn": [0.05, 0.1, 0.2], "mlp": [0.025, 0.05, 0.1]},
               "cnn_channels": 16, "band": [0.8, 1.25], "reach_share": 0.8,
               "level": 0.90, "loss": "mean"}
SETTING = ("full-batch GD on 400 rows: MNIST-1D CNN (16 channels) and digits MLP, "
           "500 steps, squared loss")
RULE = (
    f"Version 1. {RULE_PARAMS['seeds']} seeds (each its own subset of "
    f"{RULE_PARAMS['rows']} training rows and its own initial weights, shared by the "
    "BN and the standard network and by the learning rates); for each network (the "
    f"MNIST-1D CNN with {RULE_PARAMS['cnn_channels']} channels, the digits MLP "
    "64-100-100-10), with BN before every ReLU and without, and each learning rate "
    f"(CNN {RULE_PARAMS['lrs']['cnn']}, MLP {RULE_PARAMS['lrs']['mlp']}), "
    f"{RULE_PARAMS['steps']} steps of full-batch gradient descent (no momentum) on the "
    "mean squared loss to one-hot targets, the sharpness (top Hessian eigenvalue of the "
    "full-data train-mode loss) recorded every "
    f"{RULE_PARAMS['sharpness_every']} steps and divided by 2/lr. Per seed: reached if "
    f"some record's ratio is at least {RULE_PARAMS['band'][0]:g}; then the median ratio "
    "over the records from the first such record to the end. Condition per (network, "
    "BN, lr): undecided if fewer than "
    f"{RULE_PARAMS['reach_share']:.0%} of the seeds reached (the run was too short for "
    "the sharpening) or a run diverged; else, by the two-sided "
    f"{RULE_PARAMS['level']:.0%} Student-t interval over the reaching seeds of the mean "
    f"median ratio: supported if it lies inside [{RULE_PARAMS['band'][0]:g}, "
    f"{RULE_PARAMS['band'][1]:g}] (2/lr up to a factor 1.25 either way: the paper's "
    "'hovers just above 2/lr' with its oscillations), refuted if it lies entirely "
    "above or below the band, otherwise undecided. 12 conditions; the verdict: "
    "result.combine (supported if all support, refuted if all refute, mixed if some "
    "support and some refute, else underpowered), a refutation only 'in' this reduced "
    "setting. Compared with the paper's number: the mean ratio sharpness/(2/lr) per "
    "condition. Fragility alternatives: the mean in place of the median; the last half "
    "of the run in place of the records after the first reach (every seed counted); "
    "the band [0.9, 1.1]; the exact sign test of the per-seed medians against each end "
    "of the band (one-sided, 5%) in place of the t interval; 95% intervals.")


def settings(quick):
    """The set-up: networks, learning rates, rows, steps, seeds, the band."""
    keys = ("band", "reach_share", "level", "loss", "lrs", "cnn_channels",
            "sharpness_every")
    if quick:
        return {"seeds": 2, "rows": 150, "steps": 120,
                **{k: RULE_PARAMS[k] for k in keys},
                "lrs": {"cnn": [0.1, 0.2], "mlp": [0.05, 0.1]},
                "reduced": [
                    "quick: 2 seeds, 150 rows, 120 steps, two learning rates per network "
                    "(the full run: 10 seeds, 400 rows, 500 steps, three)", *_REDUCED]}
    return {**{k: RULE_PARAMS[k] for k in ("seeds", "rows", "steps") + keys},
            "reduced": list(_REDUCED)}


_REDUCED = [
    "400 training rows of MNIST-1D / digits per seed and 500 steps, where the paper "
    "trains on 5,000 CIFAR-10 images for thousands of steps (a CPU budget: a full-batch "
    "step with a Hessian record every 20 steps must stay cheap)",
    "small networks (a 3-layer Conv1d net with 16 channels, a 2-hidden-layer MLP) for "
    "the paper's VGG, ResNet and Transformer models",
    "the sharpness by a few warm-started Lanczos steps per record (bnfast.train's "
    "sharpness_every), not a converged eigensolver at each record",
]


def tasks(settings, seed):
    """One task per (seed, network, norm, lr); the tasks of a seed share its rows and
    its initial weights."""
    out = []
    for r in range(settings["seeds"]):
        for network in NETWORKS:
            for norm in NORMS:
                for lr in settings["lrs"][network]:
                    out.append({"replicate": r, "network": network, "norm": norm,
                                "lr": lr, "rows": settings["rows"],
                                "steps": settings["steps"],
                                "sharpness_every": settings["sharpness_every"],
                                "cnn_channels": settings["cnn_channels"],
                                "loss": settings["loss"], "band": settings["band"],
                                "seed": derived_seed(seed, r, NETWORKS.index(network))})
    return out


def problem(task):
    """(net, X (rows, ...), Y (rows, 10) one-hot) of a task: the network with its norm
    and initial weights from derived_seed(seed, 1), the rows drawn from
    derived_seed(seed, 0) (MNIST-1D: a random subset of the package's default training
    set; digits: the first rows of a random split)."""
    seed, rows, norm = task["seed"], task["rows"], ("std" if task["norm"] == "bn" else None)
    if task["network"] == "cnn":
        X, labels, _, _ = mnist1d_data()
        pick = np.random.default_rng(derived_seed(seed, 0)).permutation(len(X))[:rows]
        X, labels = X[pick], labels[pick]
        net = mnist1d_cnn(norm=norm, seed=derived_seed(seed, 1),
                          channels=task["cnn_channels"], loss=task["loss"])
        return net, X, np.eye(10)[labels]
    X, Y, _, _, _ = digits_data(derived_seed(seed, 0))
    net = digits_mlp((100, 100), "relu", norm=norm, seed=derived_seed(seed, 1),
                     loss=task["loss"])
    return net, X[:rows], Y[:rows]


def run_task(task):
    """One full-batch run: the losses, the sharpness records and their ratios to 2/lr."""
    net, X, Y = problem(task)
    out = {key: task[key] for key in ("replicate", "network", "norm", "lr")}
    try:
        result = train(net, X, Y, task["lr"], task["steps"],
                       record_every=task["sharpness_every"],
                       sharpness_every=task["sharpness_every"])
    except TrainingDiverged as exc:
        return {**out, "diverged_step": int(exc.step), "steps": [], "ratios": [],
                "losses": measures.finite_or_none(exc.losses)}
    steps, values = result.sharpness
    edge = measures.edge_of_stability((np.asarray(steps), np.asarray(values)), task["lr"])
    return {**out, "diverged_step": None, "steps": edge["steps"],
            "ratios": edge["ratios"], "losses": measures.finite_or_none(result.losses),
            "threshold": edge["threshold"]}


def hover_value(row, low, window="reach", statistic="median"):
    """The per-seed number of the rule: the ``statistic`` ("median" or "mean") of the
    ratios sharpness/(2/lr) over the records from the first one >= low to the end
    (window "reach"; None if none reaches) or over the second half of the run (window
    "half"; every seed counts)."""
    ratios = np.array([np.nan if v is None else v for v in row["ratios"]], dtype=float)
    if not ratios.size:
        return None
    if window == "half":
        steps = np.asarray(row["steps"])
        chosen = ratios[steps >= steps[-1] / 2]
    else:
        reached = np.flatnonzero(ratios >= low)
        if not reached.size:
            return None
        chosen = ratios[reached[0]:]
    chosen = chosen[np.isfinite(chosen)]
    if not chosen.size:
        return None
    return float(np.median(chosen) if statistic == "median" else np.mean(chosen))


def _group(results):
    groups = {}
    for r in results:
        groups.setdefault((r["network"], r["norm"], r["lr"]), []).append(r)
    for rows in groups.values():
        rows.sort(key=lambda r: r["replicate"])
    return groups


def _judge(values, band, level, test):
    """"supported" if the values lie inside the band, "refuted" if entirely above or
    below it, else "undecided": by the t interval of the mean or by sign tests at each
    end. Returns (outcome, summary)."""
    low, high = band
    if test == "sign":
        above_low = sign_test([v - low for v in values])
        below_high = sign_test([v - high for v in values])
        if above_low["p_greater"] <= 0.05 and below_high["p_less"] <= 0.05:
            label = "supported"
        elif above_low["p_less"] <= 0.05 or below_high["p_greater"] <= 0.05:
            label = "refuted"
        else:
            label = "undecided"
        return label, {"mean": float(np.mean(values)), "low": None, "high": None}
    ci = t_interval(values, level)
    if ci["low"] is None:
        return "undecided", {"mean": ci["mean"], "low": None, "high": None}
    if low <= ci["low"] and ci["high"] <= high:
        label = "supported"
    elif ci["low"] > high or ci["high"] < low:
        label = "refuted"
    else:
        label = "undecided"
    return label, {"mean": ci["mean"], "low": ci["low"], "high": ci["high"]}


def verdict_of(results, settings, band=None, window="reach", statistic="median",
               test="t", level=None):
    """(Verdict, rows) by the rule (RULE); the keyword arguments are the fragility
    alternatives."""
    band = settings["band"] if band is None else band
    level = settings["level"] if level is None else level
    conditions, rows = {}, []
    for (network, norm, lr), group in sorted(_group(results).items()):
        name = f"{network} {'BN' if norm == 'bn' else 'no BN'} lr={lr:g}"
        diverged = sum(r["diverged_step"] is not None for r in group)
        values = [hover_value(r, settings["band"][0], window, statistic) for r in group]
        reached = [v for v in values if v is not None]
        row = {"condition": name, "network": network, "norm": norm, "lr": lr,
               "seeds": len(group), "reached": len(reached), "diverged": diverged,
               "band": list(band), "values": reached}
        if diverged or len(reached) < settings["reach_share"] * len(group):
            label, summary = "undecided", {
                "mean": float(np.mean(reached)) if reached else None,
                "low": None, "high": None}
        else:
            label, summary = _judge(reached, band, level, test)
        conditions[name] = label
        rows.append({**row, "outcome": label, **summary})
    verdict = combine(conditions, SETTING, reduced=True, decide=(
        "more seeds, or more steps where the sharpness had not reached 2/lr"))
    return verdict, rows


#: The fragility alternatives: name -> keyword arguments of verdict_of.
ALTERNATIVES = {
    "mean in place of the median": {"statistic": "mean"},
    "last half of the run in place of after the first reach": {"window": "half"},
    "band [0.9, 1.1]": {"band": [0.9, 1.1]},
    "sign test in place of the t interval": {"test": "sign"},
    "95% intervals": {"level": 0.95},
}


def conclude(settings, results):
    """Verdict by RULE; the sharpness curves per condition (mean and 10-90% over
    seeds), the table of conditions and the alternatives."""
    verdict, rows = verdict_of(results, settings)
    alternatives = {name: verdict_of(results, settings, **kwargs)[0].label
                    for name, kwargs in ALTERNATIVES.items()}
    curves = []
    for (network, norm, lr), group in sorted(_group(results).items()):
        runs = [r for r in group if r["diverged_step"] is None and r["ratios"]]
        if not runs:
            curves.append({"network": network, "norm": norm, "lr": lr, "steps": [],
                           "mean": [], "p10": [], "p90": [], "loss": []})
            continue
        ratios = np.array([[np.nan if v is None else v for v in r["ratios"]]
                           for r in runs])
        losses = np.array([[np.nan if v is None else v for v in r["losses"]]
                           for r in runs])
        curves.append({"network": network, "norm": norm, "lr": lr,
                       "steps": runs[0]["steps"],
                       "mean": measures.finite_or_none(np.nanmean(ratios, axis=0)),
                       "p10": measures.finite_or_none(np.nanquantile(ratios, 0.1, axis=0)),
                       "p90": measures.finite_or_none(np.nanquantile(ratios, 0.9, axis=0)),
                       "loss": measures.finite_or_none(np.nanmean(losses, axis=0))})
    counts = {k: sum(r["outcome"] == k for r in rows)
              for k in ("supported", "refuted", "undecided")}
    means = [r["mean"] for r in rows if r["mean"] is not None]
    inputs_ = {"conditions": len(rows), **counts, "band": list(settings["band"]),
               "ratio_range": [min(means), max(means)] if means else None,
               "mean_ratio": {r["condition"]: r["mean"] for r in rows},
               "not_reached": [r["condition"] for r in rows
                               if r["reached"] < settings["reach_share"] * r["seeds"]]}
    return verdict, {"conditions": rows, "curves": curves,
                     "alternatives": alternatives, "verdict_inputs": inputs_}


def summary(measurements):
    """The lines of the terminal report."""
    inputs_ = measurements["verdict_inputs"]
    lines = [f"{inputs_['supported']} of {inputs_['conditions']} conditions supported, "
             f"{inputs_['refuted']} refuted, {inputs_['undecided']} undecided; "
             f"band for sharpness/(2/lr): {inputs_['band']}"]
    for row in measurements["conditions"]:
        ci = ("" if row["low"] is None else
              f" [{figure(row['low'])}, {figure(row['high'])}]")
        lines.append(f"  {row['condition']}: sharpness/(2/lr) after reaching "
                     f"{figure(row['mean'])}{ci}; reached {row['reached']}/"
                     f"{row['seeds']}, diverged {row['diverged']}: {row['outcome']}")
    return lines


def headline(inputs_):
    """The verdict's key figures: the counts and the range of the mean ratios."""
    span = inputs_["ratio_range"]
    span = "none" if span is None else f"{figure(span[0])}-{figure(span[1])}"
    low, high = inputs_["band"]
    return (f"{inputs_['supported']}/{inputs_['conditions']} conditions in the band "
            f"{figure(low)}-{figure(high)} x 2/lr; mean sharpness/(2/lr) after reaching "
            f"{span}")


EXPERIMENT = Experiment(name="edge-of-stability", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=1, rule_params=RULE_PARAMS, settings=settings,
                        tasks=tasks, run_task=run_task, conclude=conclude,
                        summary=summary, headline=headline, order=22, title=TITLE)
