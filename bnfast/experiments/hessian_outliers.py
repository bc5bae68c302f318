"""Hessian outliers with and without BN (Ghorbani, Krishnan, Xiao, "An investigation into
neural net optimization via Hessian eigenvalue density", ICML 2019, arXiv:1901.10159).

The claim (sections 3-4): without BN, the spectrum of the training loss's Hessian
develops a few large isolated ("outlier") eigenvalues, about as many as the classes,
soon after training starts, and the gradient concentrates in their eigenspace (most of
its squared norm lies in the top-k eigenspace); with BN, in the network's training mode
(batch statistics), the outliers are largely absent and the gradient's share in the
top-k space is small; the outliers come back when the same BN network's Hessian is
taken with population statistics (the paper's "BN in inference mode" comparison).

Measured (bnfast.curvature: Lanczos on exact Hessian-vector products of the train-mode
or eval-mode loss): on a fixed measurement batch of rows of the learning set, the top
k + 1 eigenvalues lambda_1 >= ... >= lambda_{k+1} (k = 10, the classes, as in the
paper), the outlier ratio lambda_1 / lambda_{k+1} (the top eigenvalue over the edge of
the bulk as the first eigenvalue past the k outliers), the gap ratio lambda_k /
lambda_{k+1}, and the gradient share ||V_k^T g||^2 / ||g||^2 of the gradient g of the
same loss in the span V_k of the top-k eigenvectors. BN networks are measured twice:
mode "train" (batch statistics over the measurement batch, the loss SGD follows) and
mode "eval" (the running statistics training left). A stochastic Lanczos quadrature
density (SLQ) of each Hessian of the first seed at the last checkpoint is kept for the
figure.

Set-up: the MNIST-1D CNN (problems.mnist1d_cnn, cross-entropy) and the digits MLP
64-100-100-10 (ReLU, cross-entropy), each with BN (before every ReLU) and without,
the two of a seed sharing data, initial weights and batch order; momentum SGD
(problems.RECIPES: lr 0.05, momentum 0.9, batch 100); measured at initialization and
at checkpoints along training.
"""

import math

import numpy as np

from .. import curvature
from .problems import (digits_data, digits_mlp, mnist1d_cnn, mnist1d_data, recipe,
                       train_recipe)
from .result import combine, figure
from ..executors import one_blas_thread
from .spec import Experiment, derived_seed
from .stats import decide_side

__all__ = ["EXPERIMENT", "hessian_measures", "learning_set", "network", "verdict_of"]

CLAIM = ("Without batch normalization the Hessian of the training loss has a few large "
         "outlier eigenvalues that hold most of the gradient's energy (a large share of "
         "the gradient lies in the top-k eigenspace); with batch normalization using "
         "batch statistics the outliers are almost absent and the gradient's share in "
         "the top-k space is small; they come back when the same BN network's Hessian "
         "is taken with population statistics.")
SOURCE = ("Ghorbani, Krishnan, Xiao, 'An investigation into neural net optimization via "
          "Hessian eigenvalue density', ICML 2019 (arXiv:1901.10159), sections 3-4 "
          "(outliers and the gradient's concentration; BN removes them; BN in inference "
          "mode).")
TITLE = ("Without BN, Hessian outliers hold the gradient; BN (batch statistics) "
         "removes them, population statistics bring them back (Ghorbani et al. 2019)")

PROBLEMS = ("mnist1d", "digits")
#: The short names of the problems and of the rule's six conditions (the rule's
#: wording -> the name verdicts and reports use, short enough for a one-line verdict).
SHORT = {"mnist1d": "CNN", "digits": "MLP"}
CONDITIONS = {"no-BN share": "share", "no-BN outliers": "outliers",
              "BN removes the share": "BN share", "BN removes the outliers": "BN outliers",
              "eval brings the outliers back": "eval outliers",
              "eval brings the share back": "eval share"}
NORMS = ("none", "std")
#: The rule's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "k": 10, "measure_rows": 256, "tol": 1e-4,
               "checkpoints": {"mnist1d": [0, 300, 1500], "digits": [0, 300, 1000]},
               "share_level": 0.5, "outlier_level": 3.0, "share_factor": 1.5,
               "outlier_factor": 2.0, "level": 0.90, "slq_runs": 2, "slq_steps": 40}
SETTING = ("a 3-layer MNIST-1D CNN and a 2-hidden-layer digits MLP, Hessians on "
           "256-row measurement batches")
RULE = (
    f"Version 1. {RULE_PARAMS['seeds']} seeds; per seed and problem (the MNIST-1D CNN "
    "and the digits MLP, cross-entropy, momentum SGD lr 0.05 / momentum 0.9 / batch "
    "100) a network without BN and the same network with BN before every ReLU (shared "
    "data, initial weights and batch order), measured at steps "
    f"{RULE_PARAMS['checkpoints']} on a fixed batch of {RULE_PARAMS['measure_rows']} "
    f"learning-set rows: the top k + 1 = {RULE_PARAMS['k'] + 1} Hessian eigenvalues "
    f"(Lanczos, tol {RULE_PARAMS['tol']:g}), the outlier ratio r = lambda_1 / "
    "lambda_{k+1} and the gradient share s = ||V_k^T g||^2/||g||^2 in the top-k "
    "eigenspace, of the train-mode loss (batch statistics) and, for BN, also of the "
    "eval-mode loss (running statistics). Per problem, at the last checkpoint, six "
    "conditions, each judged by the two-sided "
    f"{RULE_PARAMS['level']:.0%} Student-t interval over seeds of one number per "
    "seed (supported if it lies on the claim's side of the bar, refuted if on the "
    "other, else undecided): (no-BN share) s without BN, bar "
    f"{RULE_PARAMS['share_level']:g} (most of the gradient's energy); (no-BN "
    f"outliers) r without BN, bar {RULE_PARAMS['outlier_level']:g}; (BN removes the "
    "share) log(s_noBN / s_BN,train), bar "
    f"log {RULE_PARAMS['share_factor']:g}; (BN removes the outliers) log(r_noBN / "
    f"r_BN,train), bar log {RULE_PARAMS['outlier_factor']:g}; (eval brings the "
    f"outliers back) log(r_BN,eval / r_BN,train), bar log "
    f"{RULE_PARAMS['outlier_factor']:g}; (eval brings the share back) "
    f"log(s_BN,eval / s_BN,train), bar log {RULE_PARAMS['share_factor']:g}. 12 "
    "conditions; the verdict: result.combine (supported if all support, refuted if "
    "all refute, mixed if some support and some refute, else underpowered), a "
    "refutation only 'in' this reduced setting. Fragility alternatives: the mean over "
    "the trained checkpoints (all but step 0) in place of the last; the gap ratio "
    "lambda_k/lambda_{k+1} in place of r; the exact sign test (one-sided, 5%) in "
    "place of the t interval; factors 1 (BN merely smaller, eval merely larger); 95% "
    "intervals.")


def settings(quick):
    """The set-up: problems' recipes, checkpoints, seeds, measurement batch, bars."""
    keys = ("k", "tol", "share_level", "outlier_level", "share_factor",
            "outlier_factor", "level", "slq_runs", "slq_steps")
    base = {k: RULE_PARAMS[k] for k in keys}
    recipes = {"mnist1d": recipe("mnist1d", quick), "digits": recipe("digits-images",
                                                                       quick)}
    if quick:
        return {**base, "seeds": 3, "measure_rows": 128, "recipes": recipes,
                "checkpoints": {"mnist1d": [0, 100, 300], "digits": [0, 50, 150]},
                "quick": True, "slq_steps": 20, "reduced": [
                    "quick: 3 seeds, 128-row measurement batch, checkpoints up to 300 "
                    "(MNIST-1D) and 150 (digits) steps, 20 SLQ steps (the full run: 10 "
                    "seeds, 256 rows, 1500 and 1000 steps, 40 SLQ steps)", *_REDUCED]}
    return {**base, "seeds": RULE_PARAMS["seeds"],
            "measure_rows": RULE_PARAMS["measure_rows"], "recipes": recipes,
            "checkpoints": {k: list(v) for k, v in RULE_PARAMS["checkpoints"].items()},
            "reduced": list(_REDUCED)}


_REDUCED = [
    "small networks (a 3-layer CNN of 5k parameters on MNIST-1D, a 2-hidden-layer MLP "
    "on the 8x8 digits) for the paper's ResNet-32 / VGG on CIFAR-10 and ImageNet (a "
    "CPU budget)",
    "the Hessian of the loss on a fixed 256-row measurement batch (train mode: batch "
    "statistics over those rows) in place of the whole training set's",
    "training stopped at 1500 (MNIST-1D) and 1000 (digits) steps of momentum SGD; the "
    "paper follows its runs to convergence",
]


def tasks(settings, seed):
    """One task per (seed, problem, norm); the two norms of a (seed, problem) share
    data, initial weights, batch order and measurement batch."""
    out = []
    for r in range(settings["seeds"]):
        for problem in PROBLEMS:
            for norm in NORMS:
                out.append({"replicate": r, "problem": problem, "norm": norm,
                            "recipe": settings["recipes"][problem],
                            "checkpoints": settings["checkpoints"][problem],
                            "measure_rows": settings["measure_rows"],
                            "k": settings["k"], "tol": settings["tol"],
                            "slq": [settings["slq_runs"], settings["slq_steps"]]
                            if r == 0 else None,
                            "seed": derived_seed(seed, PROBLEMS.index(problem), r)})
    return out


def learning_set(problem, seed):
    """(X, y labels (m,), X_test, y_test) of a problem: MNIST-1D (the package's default
    data set, X (m, 1, 40)) or the digits (X (m, 64), the split from seed)."""
    if problem == "mnist1d":
        return mnist1d_data()
    X, Y, X_test, _, labels_test = digits_data(seed)
    return X, np.argmax(Y, axis=1), X_test, labels_test


def network(problem, norm, seed):
    """The network of a task: the MNIST-1D CNN or the digits MLP 64-100-100-10 (ReLU),
    with BN of ``norm`` ("std") or none, cross-entropy, weights from ``seed``."""
    norm = None if norm == "none" else norm
    if problem == "mnist1d":
        return mnist1d_cnn(norm=norm, seed=seed)
    return digits_mlp((100, 100), "relu", norm=norm, seed=seed, loss="cross_entropy")


def hessian_measures(net, X, y, k, mode, tol, seed):
    """The top k + 1 eigenvalues of the Hessian of ``net``'s ``mode`` loss on (X, y)
    and the gradient's share in the top-k eigenspace. Returns dict: "eigenvalues"
    (k + 1,) descending, "outlier_ratio" lambda_1/lambda_{k+1}, "gap_ratio"
    lambda_k/lambda_{k+1} (inf when lambda_{k+1} <= 0), "share" ||V_k^T g||^2/||g||^2,
    "products" (Lanczos steps)."""
    pairs = curvature.top_eigenvalues(net, X, y, k=k + 1, mode=mode, tol=tol, seed=seed,
                                      progress=False)
    values = pairs.eigenvalues
    _, g = net.loss_and_gradient(X, y, mode=mode)
    c = pairs.eigenvectors[:, :k].T @ g
    share = float(min(1.0, c @ c / float(g @ g))) if float(g @ g) > 0 else float("nan")
    edge = float(values[k])
    return {"eigenvalues": [float(v) for v in values],
            "outlier_ratio": float(values[0] / edge) if edge > 0 else math.inf,
            "gap_ratio": float(values[k - 1] / edge) if edge > 0 else math.inf,
            "share": share, "products": int(pairs.iterations)}


def run_task(task):
    """Trains one network along its checkpoints and measures the Hessian at each
    (train mode; for BN also eval mode after training has set running statistics)."""
    with one_blas_thread():
        X, y, X_test, y_test = learning_set(task["problem"], derived_seed(task["seed"], 0))
        rows = np.random.default_rng(derived_seed(task["seed"], 2)).permutation(
            len(X))[:task["measure_rows"]]
        Xm, ym = X[rows], y[rows]
        net = network(task["problem"], task["norm"], derived_seed(task["seed"], 1))
        modes = ("train", "eval") if task["norm"] != "none" else ("train",)
        records, done, state, slq = [], 0, None, None
        for index, step in enumerate(task["checkpoints"]):
            if step > done:
                result = train_recipe(net, X, y, {**task["recipe"], "steps": step - done},
                                      derived_seed(task["seed"], 3, index),
                                      optimizer_state=state)
                state, done = result.optimizer_state, step
            record = {"step": step, "accuracy": float(net.accuracy(X_test, y_test))}
            for mode in modes:
                if mode == "eval" and step == 0:
                    continue                      # no population statistics yet
                record[mode] = hessian_measures(net, Xm, ym, task["k"], mode,
                                                task["tol"], derived_seed(task["seed"], 4))
            records.append(record)
        if task["slq"] is not None:
            runs, steps = task["slq"]
            slq = {}
            for mode in modes:
                d = curvature.density(net, Xm, ym, mode=mode, runs=runs, steps=steps,
                                      seed=derived_seed(task["seed"], 5), progress=False)
                slq[mode] = {"nodes": np.nan_to_num(d.nodes).tolist(),
                             "weights": d.weights.tolist()}
        return {"replicate": task["replicate"], "problem": task["problem"],
                "norm": task["norm"], "num_params": net.num_params, "records": records,
                "slq": slq}


def _per_seed(results, problem, norm, mode, key, trained_mean):
    """One number per seed (seed order): ``key`` of the ``mode`` Hessian at the last
    checkpoint, or its mean over the trained checkpoints (all but step 0)."""
    rows = sorted((r for r in results if r["problem"] == problem and r["norm"] == norm),
                  key=lambda r: r["replicate"])
    out = []
    for r in rows:
        records = [c for c in r["records"] if c["step"] > 0] if trained_mean \
            else r["records"][-1:]
        out.append(float(np.mean([c[mode][key] for c in records])))
    return out


def verdict_of(results, settings, trained_mean=False, ratio="outlier_ratio", test="t",
               level=None, factors=None):
    """(Verdict, rows) by the rule (RULE); keyword arguments are the fragility
    alternatives: trained_mean (mean over trained checkpoints), ratio "gap_ratio",
    test "sign", level, factors (share_factor, outlier_factor)."""
    level = settings["level"] if level is None else level
    share_factor, outlier_factor = (settings["share_factor"], settings["outlier_factor"]) \
        if factors is None else factors
    conditions, rows = {}, []

    def judge(problem, name, values, bar, shown_bar):
        label, summary = decide_side(values, bar, level, test)
        short = f"{SHORT[problem]} {CONDITIONS[name]}"
        conditions[short] = label
        rows.append({"condition": short, "problem": problem, "name": name,
                     "outcome": label, "bar": shown_bar, "seeds": len(values),
                     **summary})

    for problem in PROBLEMS:
        def get(norm, mode, key):
            return _per_seed(results, problem, norm, mode, key, trained_mean)
        plain_s, plain_r = get("none", "train", "share"), get("none", "train", ratio)
        if not plain_s:
            continue
        bn_s, bn_r = get("std", "train", "share"), get("std", "train", ratio)
        ev_s, ev_r = get("std", "eval", "share"), get("std", "eval", ratio)
        log = np.log
        judge(problem, "no-BN share", plain_s, settings["share_level"],
              settings["share_level"])
        judge(problem, "no-BN outliers", plain_r, settings["outlier_level"],
              settings["outlier_level"])
        judge(problem, "BN removes the share", list(log(np.divide(plain_s, bn_s))),
              math.log(share_factor), share_factor)
        judge(problem, "BN removes the outliers", list(log(np.divide(plain_r, bn_r))),
              math.log(outlier_factor), outlier_factor)
        judge(problem, "eval brings the outliers back", list(log(np.divide(ev_r, bn_r))),
              math.log(outlier_factor), outlier_factor)
        judge(problem, "eval brings the share back", list(log(np.divide(ev_s, bn_s))),
              math.log(share_factor), share_factor)
    verdict = combine(conditions, SETTING, reduced=True,
                      decide="more seeds in the undecided conditions")
    return verdict, rows


#: The fragility alternatives: name -> keyword arguments of verdict_of.
ALTERNATIVES = {
    "mean over the trained checkpoints in place of the last": {"trained_mean": True},
    "gap ratio lambda_k/lambda_{k+1} in place of lambda_1/lambda_{k+1}":
        {"ratio": "gap_ratio"},
    "sign test in place of the t interval": {"test": "sign"},
    "factors 1 (BN merely smaller, eval merely larger)": {"factors": (1.0, 1.0)},
    "95% intervals": {"level": 0.95},
}


def _table(results):
    """Per (problem, norm, mode, step): mean over seeds of share, outlier ratio, gap
    ratio, lambda_1, lambda_{k+1} and test accuracy."""
    out = []
    for problem in PROBLEMS:
        for norm in NORMS:
            group = [r for r in results if r["problem"] == problem and r["norm"] == norm]
            if not group:
                continue
            for mode in ("train", "eval"):
                for i, record in enumerate(group[0]["records"]):
                    if mode not in record:
                        continue
                    values = [g["records"][i][mode] for g in group]
                    out.append({
                        "problem": problem, "norm": norm, "mode": mode,
                        "step": record["step"],
                        "share": float(np.mean([v["share"] for v in values])),
                        "outlier_ratio": float(np.median([v["outlier_ratio"]
                                                          for v in values])),
                        "gap_ratio": float(np.median([v["gap_ratio"] for v in values])),
                        "lambda_1": float(np.mean([v["eigenvalues"][0] for v in values])),
                        "lambda_k1": float(np.mean([v["eigenvalues"][-1]
                                                    for v in values])),
                        "accuracy": float(np.mean([g["records"][i]["accuracy"]
                                                   for g in group])),
                        "eigenvalues": np.mean([v["eigenvalues"] for v in values],
                                               axis=0).tolist()})
    return out


def conclude(settings, results):
    """Verdict by RULE; the table of means per checkpoint, the first seed's densities,
    the conditions and the alternatives."""
    verdict, rows = verdict_of(results, settings)
    alternatives = {name: verdict_of(results, settings, **kwargs)[0].label
                    for name, kwargs in ALTERNATIVES.items()}
    densities = [{"problem": r["problem"], "norm": r["norm"], "mode": mode, **d}
                 for r in results if r["slq"] for mode, d in r["slq"].items()]
    counts = {k: sum(r["outcome"] == k for r in rows)
              for k in ("supported", "refuted", "undecided")}
    means = {r["condition"]: r["mean"] for r in rows}
    inputs_ = {"conditions": len(rows), **counts, "means": means,
               "num_params": {f"{r['problem']}/{r['norm']}": r["num_params"]
                              for r in results if r["replicate"] == 0}}
    return verdict, {"conditions": rows, "table": _table(results),
                     "densities": densities, "alternatives": alternatives,
                     "verdict_inputs": inputs_}


def summary(measurements):
    """The lines of the terminal report."""
    inputs_ = measurements["verdict_inputs"]
    lines = [f"{inputs_['supported']} of {inputs_['conditions']} conditions supported, "
             f"{inputs_['refuted']} refuted, {inputs_['undecided']} undecided "
             "(log-ratio conditions shown as ratios)"]
    for row in measurements["table"]:
        lines.append(f"  {row['problem']:<8} {'BN' if row['norm'] != 'none' else 'no BN':<5}"
                     f" {row['mode']:<5} step {row['step']:<5} share "
                     f"{figure(row['share'])}, lambda_1/lambda_11 "
                     f"{figure(row['outlier_ratio'])} (median), lambda_1 "
                     f"{figure(row['lambda_1'])}, test acc {figure(row['accuracy'])}")
    for row in measurements["conditions"]:
        log = row["name"] not in ("no-BN share", "no-BN outliers")
        show = (lambda v: figure(math.exp(v))) if log else figure
        ci = "" if row["low"] is None else f" [{show(row['low'])}, {show(row['high'])}]"
        lines.append(f"  {row['condition']} ({row['name']}): {show(row['mean'])}{ci} vs "
                     f"{figure(row['bar'])}: {row['outcome']}")
    return lines


def headline(inputs_):
    """The verdict's key figures, for the CNN and the MLP: the no-BN share,
    r_noBN/r_BN and r_eval/r_train."""
    means = inputs_["means"]

    def pair(name, ratio):
        values = [means.get(f"{SHORT[p]} {name}") for p in PROBLEMS]
        return ", ".join(figure(None if v is None else math.exp(v) if ratio else v)
                         for v in values)
    return (f"{inputs_['supported']}/{inputs_['conditions']} supported; no-BN share "
            f"{pair('share', False)}; r_noBN/r_BN {pair('BN outliers', True)}; "
            f"r_eval/r_train {pair('eval outliers', True)} (CNN, MLP)")


EXPERIMENT = Experiment(name="hessian-outliers", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=1, rule_params=RULE_PARAMS, settings=settings,
                        tasks=tasks, run_task=run_task, conclude=conclude,
                        summary=summary, headline=headline, order=24, title=TITLE)
