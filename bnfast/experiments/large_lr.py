"""BN's benefit comes from the larger learning rates it allows (Bjorck, Gomes, Selman,
Weinberger, "Understanding batch normalization", NeurIPS 2018, arXiv:1806.02375).

The claim (abstract and section 2): "the ability to train with larger learning rates"
is the primary mechanism by which BN helps: BN networks stay stable at learning rates
at which unnormalized networks diverge, and "with the same learning rate" (a small one
both can use) networks with and without BN train to similar results; BN's advantage in
accuracy comes with its larger learning rates (the paper's figure 1 and table of
ResNet-110 on CIFAR-10 with and without BN at several learning rates).

Measured, per seed and network (the MNIST-1D Conv1d CNN of problems.py and the digits
MLP 64-100-100-10, ReLU, cross-entropy), with BN before every ReLU and without:
    the largest stable learning rate (measures.largest_stable_lr: a run of ``probe_steps``
        mini-batch steps neither diverges nor ends above its start loss; bisection on
        a log grid);
    the test accuracy after ``steps`` mini-batch steps of momentum SGD at each learning
        rate of a grid (a diverged run scores the chance accuracy 0.1);
and from them the accuracy gap BN - standard at a matched small learning rate and at
each network's best learning rate (the grid value with the highest mean test accuracy
over seeds).
"""

import math

import numpy as np

from ..nn import SGD, TrainingDiverged, train
from . import measures
from .problems import digits_data, digits_mlp, mnist1d_cnn, mnist1d_data
from .result import combine, figure
from .spec import Experiment, derived_seed
from .stats import decide_side, sign_test, t_interval, tost

__all__ = ["EXPERIMENT", "best_lr_index", "run_task", "verdict_of"]

CLAIM = ("Batch normalization helps mainly because it allows larger learning rates: BN "
         "networks are stable at much larger learning rates than unnormalized ones; at "
         "the same small learning rate networks with and without BN train similarly, "
         "and BN's advantage comes with its larger learning rates.")
SOURCE = ("Bjorck, Gomes, Selman, Weinberger, 'Understanding batch normalization', "
          "NeurIPS 2018 (arXiv:1806.02375), abstract, section 2 and figure 1.")
TITLE = ("BN's benefit comes from the larger learning rates it allows (Bjorck et al. "
         "2018)")

NETWORKS = ("cnn", "mlp")
NORMS = ("bn", "none")
#: Chance accuracy of the 10 classes: the score of a diverged run.
CHANCE = 0.1
#: The rule's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "batch_size": 100, "momentum": 0.9, "steps": 400,
               "probe_steps": 100, "probe_low": 0.001, "probe_high": 100.0,
               "probe_points": 31, "lrs": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
               "matched_lr": 0.01, "cnn_channels": 16, "factor": 2.0,
               "accuracy_margin": 0.03, "level": 0.90}
SETTING = ("MNIST-1D CNN (16 channels) and digits MLP, momentum SGD, batch 100, "
           "400 steps per learning rate")
RULE = (
    f"Version 1. {RULE_PARAMS['seeds']} seeds (each its own initial weights, shared by "
    "the BN and the standard network, and its own shuffles); networks: the MNIST-1D "
    f"CNN ({RULE_PARAMS['cnn_channels']} channels, the package's default data set) and "
    "the digits MLP 64-100-100-10 (a random 80/20 split per seed), ReLU, cross-entropy, "
    "each with BN before every ReLU and without; optimizer: SGD with momentum "
    f"{RULE_PARAMS['momentum']:g}, batch {RULE_PARAMS['batch_size']}. Measured per seed: "
    "the largest stable learning rate (measures.largest_stable_lr: "
    f"{RULE_PARAMS['probe_steps']} steps neither diverge nor end above the start loss; "
    f"bisection on a {RULE_PARAMS['probe_points']}-point log grid "
    f"{RULE_PARAMS['probe_low']:g}-{RULE_PARAMS['probe_high']:g}), and the test "
    f"accuracy after {RULE_PARAMS['steps']} steps at each learning rate of "
    f"{RULE_PARAMS['lrs']} (a diverged run scores the chance accuracy 0.1). A "
    "network's best learning rate: the grid value with the highest mean test accuracy "
    "over seeds. Conditions per network, over seeds: (larger lr) log2 of BN's largest "
    "stable lr over the standard net's: supported if the two-sided "
    f"{RULE_PARAMS['level']:.0%} t interval lies above log2 {RULE_PARAMS['factor']:g}, "
    "refuted if below, else undecided; (similar at a matched lr) the accuracy gap BN - "
    f"standard at lr {RULE_PARAMS['matched_lr']:g}: supported if equivalent to 0 "
    f"within +-{RULE_PARAMS['accuracy_margin']:g} (two one-sided t tests at 5%), "
    "refuted if the 90% interval lies outside the margin, else undecided; (advantage "
    "at the best lrs) the gap BN at its best lr - standard at its best lr: supported "
    f"if the {RULE_PARAMS['level']:.0%} interval lies above "
    f"{RULE_PARAMS['accuracy_margin']:g} (larger than what counts as similar), refuted "
    "if below, else undecided. 6 conditions; the verdict: result.combine (supported if "
    "all support, refuted if all refute, mixed if some support and some refute, else "
    "underpowered), a refutation only 'in' this reduced setting. Fragility "
    "alternatives: each seed's own best lr in place of the mean's; the exact sign test "
    "(one-sided, 5%) in place of the t intervals; factor 1.5; accuracy margin 0.02 and "
    "0.05; 95% intervals.")


def settings(quick):
    """The set-up: networks, grids, steps, seeds, margins."""
    keys = ("batch_size", "momentum", "probe_low", "probe_high", "probe_points",
            "matched_lr", "cnn_channels", "factor", "accuracy_margin", "level")
    if quick:
        return {"seeds": 2, "steps": 60, "probe_steps": 30,
                "lrs": [0.003, 0.01, 0.1, 1.0], **{k: RULE_PARAMS[k] for k in keys},
                "probe_points": 11,
                "reduced": [
                    "quick: 2 seeds, 60 steps per learning rate on 4 learning rates, "
                    "30-step stability probes on an 11-point grid (the full run: 10 "
                    "seeds, 400 steps on 8 learning rates, 100-step probes, 31 points)",
                    *_REDUCED]}
    return {**{k: RULE_PARAMS[k] for k in ("seeds", "steps", "probe_steps", "lrs")
               + keys}, "reduced": list(_REDUCED)}


_REDUCED = [
    "small networks on MNIST-1D and the 8x8 digits (a 3-layer Conv1d net, a "
    "2-hidden-layer MLP) for the paper's ResNet-110 on CIFAR-10 (a CPU budget)",
    "400 steps (10 epochs of MNIST-1D, 28 of the digits) per learning rate without a "
    "schedule or weight decay, where the paper trains for 120+ epochs with a decayed "
    "learning rate",
    "stability judged on 100-step probes (divergence or a loss above its start), the "
    "paper's divergence observed over whole runs",
]


def tasks(settings, seed):
    """One task per (seed, network, norm); the two norms of a seed share initial weights,
    data split and shuffles."""
    out = []
    for r in range(settings["seeds"]):
        for network in NETWORKS:
            for norm in NORMS:
                out.append({"replicate": r, "network": network, "norm": norm,
                            **{k: settings[k] for k in (
                                "steps", "probe_steps", "lrs", "batch_size", "momentum",
                                "probe_low", "probe_high", "probe_points",
                                "cnn_channels")},
                            "seed": derived_seed(seed, r, NETWORKS.index(network))})
    return out


def problem(task):
    """(net, X, labels (m,), X_test, labels_test) of a task: the network with its norm
    and initial weights from derived_seed(seed, 1); MNIST-1D's default data set, or a
    digits split drawn from derived_seed(seed, 0)."""
    seed, norm = task["seed"], ("std" if task["norm"] == "bn" else None)
    if task["network"] == "cnn":
        X, y, X_test, y_test = mnist1d_data()
        net = mnist1d_cnn(norm=norm, seed=derived_seed(seed, 1),
                          channels=task["cnn_channels"])
        return net, X, y, X_test, y_test
    X, Y, X_test, _, y_test = digits_data(derived_seed(seed, 0))
    net = digits_mlp((100, 100), "relu", norm=norm, seed=derived_seed(seed, 1),
                     loss="cross_entropy")
    return net, X, np.argmax(Y, axis=1), X_test, np.asarray(y_test)


def run_task(task):
    """One (seed, network, norm): the largest stable lr and, per grid lr, the final
    training loss and the test accuracy (Network.accuracy: eval mode, BN with its
    running statistics)."""
    import copy
    net, X, y, X_test, y_test = problem(task)
    optimizer = SGD(momentum=task["momentum"])
    shuffles = derived_seed(task["seed"], 2)
    probe = measures.largest_stable_lr(net, X, y, task["probe_steps"], task["probe_low"],
                                       task["probe_high"], task["probe_points"],
                                       batch_size=task["batch_size"],
                                       optimizer=optimizer, seed=shuffles)
    grid = []
    for lr in task["lrs"]:
        run = copy.deepcopy(net)
        try:
            result = train(run, X, y, lr, task["steps"], batch_size=task["batch_size"],
                           seed=shuffles, record_every=task["steps"],
                           optimizer=optimizer)
            loss = measures.finite_or_none([result.losses[-1]])[0]
            grid.append({"lr": lr, "diverged": False, "train_loss": loss,
                         "test_accuracy": float(run.accuracy(X_test, y_test))})
        except TrainingDiverged:
            grid.append({"lr": lr, "diverged": True, "train_loss": None,
                         "test_accuracy": CHANCE})
    return {"replicate": task["replicate"], "network": task["network"],
            "norm": task["norm"], "largest_stable_lr": probe["lr"],
            "next_lr": probe["next_lr"], "probes": len(probe["tried"]), "grid": grid}


def _group(results):
    groups = {}
    for r in results:
        groups.setdefault((r["network"], r["norm"]), []).append(r)
    for rows in groups.values():
        rows.sort(key=lambda r: r["replicate"])
    return groups


def best_lr_index(rows):
    """The index of the grid lr with the highest mean test accuracy over ``rows`` (the
    seeds' task results of one network and norm; ties: the smallest lr)."""
    means = np.mean([[g["test_accuracy"] for g in r["grid"]] for r in rows], axis=0)
    return int(np.argmax(means))


def _decide_similar(values, margin, level, test):
    """supported if the values are equivalent to 0 within +-margin (TOST at 5%, or sign
    tests against each end), refuted if they lie outside, else undecided."""
    if test == "sign":
        above = sign_test([v + margin for v in values])
        below = sign_test([v - margin for v in values])
        if above["p_greater"] <= 0.05 and below["p_less"] <= 0.05:
            label = "supported"
        elif above["p_less"] <= 0.05 or below["p_greater"] <= 0.05:
            label = "refuted"
        else:
            label = "undecided"
        return label, {"mean": float(np.mean(values)), "low": None, "high": None}
    if level == 0.90:
        out = tost(values, margin, alpha=0.05)
        low, high, outcome = out["low"], out["high"], out["outcome"]
        label = {"equivalent": "supported", "above": "refuted",
                 "below": "refuted"}.get(outcome, "undecided")
        return label, {"mean": out["mean"], "low": low, "high": high}
    ci = t_interval(values, level)
    if ci["low"] is None:
        return "undecided", {"mean": ci["mean"], "low": None, "high": None}
    label = ("supported" if -margin < ci["low"] and ci["high"] < margin else
             "refuted" if ci["low"] > margin or ci["high"] < -margin else "undecided")
    return label, {"mean": ci["mean"], "low": ci["low"], "high": ci["high"]}


def _per_seed(groups, network, settings, own_best):
    """The per-seed numbers of one network: (log2 lr ratios, matched gaps, best gaps,
    the best lrs {norm: lr or None})."""
    bn, plain = groups[(network, "bn")], groups[(network, "none")]
    seeds = min(len(bn), len(plain))
    bn, plain = bn[:seeds], plain[:seeds]

    def log_lr(r):
        lr = r["largest_stable_lr"]
        return math.log2(lr) if lr else math.log2(settings["probe_low"]) - 1.0
    ratios = [log_lr(a) - log_lr(b) for a, b in zip(bn, plain)]
    lrs = [g["lr"] for g in bn[0]["grid"]]
    matched = lrs.index(settings["matched_lr"]) if settings["matched_lr"] in lrs else None
    gaps = ([a["grid"][matched]["test_accuracy"] - b["grid"][matched]["test_accuracy"]
             for a, b in zip(bn, plain)] if matched is not None else [])
    if own_best:
        best = [max(g["test_accuracy"] for g in a["grid"])
                - max(g["test_accuracy"] for g in b["grid"]) for a, b in zip(bn, plain)]
        best_lrs = {"bn": None, "none": None}
    else:
        i, j = best_lr_index(bn), best_lr_index(plain)
        best = [a["grid"][i]["test_accuracy"] - b["grid"][j]["test_accuracy"]
                for a, b in zip(bn, plain)]
        best_lrs = {"bn": lrs[i], "none": lrs[j]}
    return ratios, gaps, best, best_lrs


def verdict_of(results, settings, own_best=False, test="t", level=None, factor=None,
               margin=None):
    """(Verdict, rows) by the rule (RULE); the keyword arguments are the fragility
    alternatives."""
    level = settings["level"] if level is None else level
    factor = settings["factor"] if factor is None else factor
    margin = settings["accuracy_margin"] if margin is None else margin
    groups = _group(results)
    conditions, rows = {}, []
    for network in NETWORKS:
        if (network, "bn") not in groups or (network, "none") not in groups:
            continue
        ratios, gaps, best, best_lrs = _per_seed(groups, network, settings, own_best)
        judged = [
            ("larger lr", ratios, decide_side(ratios, math.log2(factor), level, test),
             math.log2(factor)),
            ("similar at the matched lr", gaps,
             _decide_similar(gaps, margin, level, test) if gaps else
             ("undecided", {"mean": None, "low": None, "high": None}), margin),
            ("advantage at the best lrs", best,
             decide_side(best, margin, level, test), margin)]
        for kind, values, (label, summary), bar in judged:
            name = f"{network}: {kind}"
            conditions[name] = label
            rows.append({"condition": name, "network": network, "kind": kind,
                         "outcome": label, "threshold": bar, "seeds": len(values),
                         "values": [float(v) for v in values], "best_lrs": best_lrs,
                         **summary})
    verdict = combine(conditions, SETTING, reduced=True, decide=(
        "more seeds, or longer runs for the accuracy gaps"))
    return verdict, rows


#: The fragility alternatives: name -> keyword arguments of verdict_of.
ALTERNATIVES = {
    "each seed's own best lr": {"own_best": True},
    "sign test in place of the t intervals": {"test": "sign"},
    "factor 1.5": {"factor": 1.5},
    "accuracy margin 0.02": {"margin": 0.02},
    "accuracy margin 0.05": {"margin": 0.05},
    "95% intervals": {"level": 0.95},
}


def conclude(settings, results):
    """Verdict by RULE; accuracy against lr per (network, norm), the largest stable lrs,
    the table of conditions and the alternatives."""
    verdict, rows = verdict_of(results, settings)
    alternatives = {name: verdict_of(results, settings, **kwargs)[0].label
                    for name, kwargs in ALTERNATIVES.items()}
    curves = []
    for (network, norm), group in sorted(_group(results).items()):
        acc = np.array([[g["test_accuracy"] for g in r["grid"]] for r in group])
        stable = [r["largest_stable_lr"] for r in group]
        curves.append({"network": network, "norm": norm,
                       "lrs": [g["lr"] for g in group[0]["grid"]],
                       "accuracy_mean": acc.mean(axis=0).tolist(),
                       "accuracy_p10": np.quantile(acc, 0.1, axis=0).tolist(),
                       "accuracy_p90": np.quantile(acc, 0.9, axis=0).tolist(),
                       "diverged": [int(sum(r["grid"][i]["diverged"] for r in group))
                                    for i in range(acc.shape[1])],
                       "largest_stable_lr": stable,
                       "largest_stable_lr_median": float(np.median(
                           [s if s else 0.0 for s in stable]))})
    counts = {k: sum(r["outcome"] == k for r in rows)
              for k in ("supported", "refuted", "undecided")}
    by = {r["condition"]: r for r in rows}
    inputs_ = {"conditions": len(rows), **counts, "factor": settings["factor"],
               "accuracy_margin": settings["accuracy_margin"],
               "matched_lr": settings["matched_lr"],
               "lr_ratio": {n: 2 ** by[f"{n}: larger lr"]["mean"] for n in NETWORKS
                            if f"{n}: larger lr" in by},
               "matched_gap": {n: by[f"{n}: similar at the matched lr"]["mean"]
                               for n in NETWORKS if f"{n}: larger lr" in by},
               "best_gap": {n: by[f"{n}: advantage at the best lrs"]["mean"]
                            for n in NETWORKS if f"{n}: larger lr" in by},
               "best_lrs": {n: by[f"{n}: advantage at the best lrs"]["best_lrs"]
                            for n in NETWORKS if f"{n}: larger lr" in by}}
    return verdict, {"conditions": rows, "curves": curves,
                     "alternatives": alternatives, "verdict_inputs": inputs_}


def summary(measurements):
    """The lines of the terminal report."""
    inputs_ = measurements["verdict_inputs"]
    lines = [f"{inputs_['supported']} of {inputs_['conditions']} conditions supported, "
             f"{inputs_['refuted']} refuted, {inputs_['undecided']} undecided"]
    for curve in measurements["curves"]:
        lines.append(
            f"  {curve['network']} {'BN' if curve['norm'] == 'bn' else 'no BN'}: median "
            f"largest stable lr {figure(curve['largest_stable_lr_median'])}; test "
            "accuracy by lr " + ", ".join(
                f"{lr:g}: {acc:.3f}" for lr, acc in zip(curve["lrs"],
                                                        curve["accuracy_mean"])))
    for row in measurements["conditions"]:
        ci = ("" if row["low"] is None else
              f" [{figure(row['low'])}, {figure(row['high'])}]")
        unit = " (log2 of the ratio)" if row["kind"] == "larger lr" else ""
        lines.append(f"  {row['condition']}: {figure(row['mean'])}{ci}{unit} vs "
                     f"{figure(row['threshold'])}: {row['outcome']}")
    return lines


def headline(inputs_):
    """The verdict's key figures: the lr ratios and the accuracy gaps."""
    parts = []
    for network in inputs_["lr_ratio"]:
        parts.append(f"{network}: lr x{figure(inputs_['lr_ratio'][network])}, gap "
                     f"{figure(inputs_['matched_gap'][network])} at lr "
                     f"{inputs_['matched_lr']:g} vs "
                     f"{figure(inputs_['best_gap'][network])} at best lrs")
    return f"{inputs_['supported']}/{inputs_['conditions']} supported; " + "; ".join(parts)


EXPERIMENT = Experiment(name="large-lr", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=1, rule_params=RULE_PARAMS, settings=settings,
                        tasks=tasks, run_task=run_task, conclude=conclude,
                        summary=summary, headline=headline, order=23, title=TITLE)
