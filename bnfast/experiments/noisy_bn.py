"""Noisy BN (Santurkar et al. 2018, section 2.1, Algorithm 1, Figures 2 and 7): BN with
injected, time-varying, non-zero-mean and non-unit-variance noise after every BN layer
trains like BN and better than the standard net, although its activations' distributions
are less stable than even the standard net's.

Version 3 (docs/experiments/noisy_bn.md): the papers' architecture family, the MNIST-1D
Conv1d network and the 8x8-digits Conv2d network of problems.py (cross-entropy, the
momentum-SGD recipes), four networks per seed from the same data, initial weights, batch
order and noise seeds:

    standard   no normalization
    bn         BN over channels before each ReLU
    noisy_bn   BN, then Algorithm 1's noise (bnfast.BNNoise: the paper's n_mu = 0.5,
               n_sigma = 1.25, r_mu = r_sigma = 0.1), one draw per sample and channel
    control    the standard net with the same noise at the same place (after the conv
               map, before the ReLU, no normalization): does noise alone hurt a net
               without BN more than one with BN?

Accuracy against steps (the paper's Figure 2): the test accuracy (BN with its running
statistics, no noise) at pre-registered checkpoints, summarised per seed by its mean
over them (the area under the test-accuracy curve). The dense digits MLP of version 2
(squared loss, plain SGD) runs the same four networks as a reported extra.

Distributional drift (the paper's Figure 7: the change of the first two moments of a
layer's activations between two successive training steps): for a fixed probe batch P
of training rows, per hidden Dense or Conv layer l and unit c (a feature, or a channel
over all its positions), z_lc is the input of the activation as training sees it (the
pre-activation for the standard net; the BN output; either with a fresh draw of
Algorithm 1's noise for noisy BN and the control). At a checkpoint t, with the moments
mean_c(t), var_c(t) over P (and the positions),

    mean drift_l = (1/C_l) sum_c |mean_c(t+1) - mean_c(t)|,
    var drift_l  = (1/C_l) sum_c |var_c(t+1) - var_c(t)|,

t+1 being the parameters after the next SGD step (and, with noise, the next draw).
"""

import math

import numpy as np

from ..nn import BNNoise, Network, Residual, TrainingDiverged, train
from ..nn.layers import Weighted
from . import problems, stats
from .measures import downsample
from .result import combine, figure
from .spec import Experiment, derived_seed

__all__ = ["CONFIGS", "EXPERIMENT", "activation_moments", "checkpoint_steps", "draw_noise",
           "judge", "noise_effect", "summaries", "verdict_of"]

#: The networks compared, in order: name -> (BN norm or None, with noise).
NETWORKS = {"standard": (None, False), "bn": ("std", False), "noisy_bn": ("std", True),
            "control": (None, True)}
CONFIGS = tuple(NETWORKS)
#: The judged problems (the conditions of the verdict) and the reported extra.
PROBLEMS = ("mnist1d", "digits-images")
EXTRA = "digits"
#: Algorithm 1's parameters as the paper sets them (BNNoise's defaults).
NOISE = BNNoise()
#: The rule's parameters (the single source; hashed with the rule's text). recipes: the
#: full runs' training (problems.RECIPES "full", checked against it by settings()).
RULE_PARAMS = {
    "seeds": 10,
    "problems": list(PROBLEMS),
    "recipes": {"mnist1d": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0,
                            "batch_size": 100, "steps": 4000},
                "digits-images": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0,
                                  "batch_size": 100, "steps": 1000}},
    "checkpoints": 16,
    "summary": "mean test accuracy over the checkpoints",
    "alpha": 0.05,
    "margin_fraction": 0.5,
    "noise": NOISE.to_dict(),
    "extra": {"problem": EXTRA, "hidden": [100, 100], "activation": "relu",
              "loss": "mean", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0,
              "batch_size": 64, "steps": 3000},
}
#: The conditions' names and the setting of the verdict.
CONDITIONS = {"mnist1d": "MNIST-1D CNN", "digits-images": "digits CNN"}
SETTING = ("the small CNNs on MNIST-1D and the 8x8 digits (reduced stand-ins for the "
           "paper's VGG on CIFAR-10)")
#: The per-seed summaries: the rule's, then the fragility line's alternatives.
SUMMARY = "mean_accuracy"
ALTERNATIVES = {"final test accuracy": "final_accuracy",
                "test accuracy over the first half of the checkpoints": "early_accuracy",
                "training loss instead (mean of -log10 of the noise-free loss at the "
                "checkpoints)": "neg_log_loss"}
#: The fraction of the checkpoints at which the drift is measured (every 4th).
DRIFT_EVERY = 4
#: Probe rows of the drift measurement.
PROBE_ROWS = 256


def draw_noise(rng, rows, units, noise):
    """One draw of Algorithm 1 for one layer: (scale (rows, units), shift (rows,
    units)); per unit j mu_j ~ U(-n_mu, n_mu), s0_j ~ U(1, n_sigma); per row i
    m_ij ~ U(mu_j - r_mu, mu_j + r_mu), s_ij ~ N(s0_j, r_sigma^2). rng : NumPy
    Generator; noise : BNNoise. A unit is a feature, or a channel (its draw then serves
    all its positions)."""
    mu = rng.uniform(-noise.n_mu, noise.n_mu, units)
    s0 = rng.uniform(1.0, noise.n_sigma, units)
    shift = rng.uniform(mu - noise.r_mu, mu + noise.r_mu, (rows, units))
    scale = rng.normal(s0, noise.r_sigma, (rows, units))
    return scale, shift


_ACTIVATIONS = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0.0),
                "tanh": np.tanh, "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z))}


def activation_moments(net, X, rng=None):
    """Per hidden weighted layer (Dense or Conv, not the last layer), the per-unit
    (mean (C,), var (C,)) of its activation input z over the rows of X (and over the
    positions of a conv layer's (m, C, *) values).

    z is the layer's map (W a + b, or the convolution), then its BN with the batch
    statistics of X (train mode); when the layer has noise (noisy BN or the control) and
    rng (a NumPy Generator) is given, z <- s z + m with a fresh draw_noise per row and
    unit. The engine evaluates the net one weighted layer at a time (train mode, noise
    free: with the layer's activation and noise removed) and the noise is added here,
    so each layer sees the noisy activations of the layers before it, as in training.

    net : a Network without Residual blocks; X : its input (m, ...).
    Returns (moments, output): output (m, out) the network's output, net.forward(X)
    when rng is None.
    """
    layers = net.layers
    if any(isinstance(layer, Residual) for layer in layers):
        raise ValueError("activation_moments takes networks without residual blocks")
    params, slices = net.params, net.param_slices
    A = np.asarray(X, dtype=np.float64)
    moments, start = [], 0
    for index, layer in enumerate(layers):
        last = index == len(layers) - 1
        if not isinstance(layer, Weighted) and not last:
            continue
        part = [item.copy() for item in layers[start:index + 1]]
        if isinstance(layer, Weighted):  # z: without the activation and the noise
            part[-1].activation, part[-1].noise = "identity", None
            if part[-1].batch_norm is not None:
                part[-1].normalization.noise = None
        segment = Network(part)
        segment.params = params[slices[start].start:slices[index].stop]
        Z = segment.forward(A)
        if isinstance(layer, Weighted):
            noise = layer.applied_noise
            if noise is not None and rng is not None:
                scale, shift = draw_noise(rng, Z.shape[0], Z.shape[1], noise)
                spread = (1,) * (Z.ndim - 2)   # a channel's draw serves its positions
                Z = scale.reshape(scale.shape + spread) * Z + shift.reshape(shift.shape + spread)
            if not last:
                axes = (0,) + tuple(range(2, Z.ndim))
                moments.append((Z.mean(axis=axes), Z.var(axis=axes)))
            Z = _ACTIVATIONS[layer.activation](Z)
        A, start = Z, index + 1
    return moments, A


def checkpoint_steps(steps, checkpoints):
    """[0, S // n, 2 S // n, ..., S] for S = steps, n = checkpoints (integer steps)."""
    return [k * steps // checkpoints for k in range(checkpoints + 1)]


# --------------------------------------------------------------------------- set-up

def settings(quick):
    """The two CNN problems with their momentum-SGD recipes (quick or full), the dense
    digits MLP as a reported extra, the four networks, several seeds."""
    n = 4 if quick else RULE_PARAMS["checkpoints"]
    setups = {}
    for problem in PROBLEMS:
        recipe = problems.recipe(problem, quick)
        if not quick:
            registered = RULE_PARAMS["recipes"][problem]
            if {k: recipe[k] for k in registered} != registered:
                raise RuntimeError(f"problems.RECIPES[{problem!r}]['full'] changed: the "
                                   "noisy-bn rule registered another recipe (a new rule "
                                   "version is needed)")
        setups[problem] = {**recipe, "checkpoints": n, "probe_rows": PROBE_ROWS}
    extra = {k: v for k, v in RULE_PARAMS["extra"].items() if k != "problem"}
    setups[EXTRA] = {**extra, "steps": 300 if quick else extra["steps"], "checkpoints": n,
                     "probe_rows": PROBE_ROWS}
    reduced = [
        "the paper's VGG on CIFAR-10 is replaced by two small CNNs on data that ships "
        "(MNIST-1D Conv1d, 5,360 parameters with BN; 8x8-digits Conv2d, 6,186): a CPU "
        "budget of minutes; they are reduced stand-ins for VGG, so a refutation reads "
        "'refuted in' them",
        "the control (the same noise on the standard net) is not in the paper, which "
        "compares standard, BN and noisy BN only; it is reported, not judged",
        "test accuracy at 16 checkpoints (4 when quick) instead of the paper's continuous "
        "curves; distribution drift at every 4th checkpoint (between the checkpoint's "
        "parameters and those one SGD step later), not at every step",
        "accuracies and losses are noise free (BN with running statistics, no noise): "
        "the noisy nets are trained with noise and evaluated without it",
        "the dense digits MLP (squared loss, plain SGD, version 2's set-up at lr 0.1) is "
        "a reported extra, not a condition of the verdict",
    ]
    if quick:
        reduced.append("quick: 3 seeds, the quick recipes (MNIST-1D 300 steps, digits "
                       "150, MLP 300), 4 checkpoints (for tests and CI)")
    return {"problems": list(PROBLEMS), "extra": EXTRA, **setups,
            "seeds": 3 if quick else RULE_PARAMS["seeds"], "checkpoints": n,
            "drift_every": DRIFT_EVERY // 2 if quick else DRIFT_EVERY,
            "noise": NOISE.to_dict(), "configs": list(CONFIGS), "reduced": reduced}


def tasks(settings, seed):
    """One task per (problem, seed, network), the longest problem first; the four
    networks of a seed share the data (split), the initial weights, the batch order, the
    training noise seeds and the probe batch (problems.paired_tasks)."""
    configs = {config: NETWORKS[config][0] for config in settings["configs"]}
    out = problems.paired_tasks(settings, seed, configs,
                                problems=(*settings["problems"], settings["extra"]),
                                drift_every=settings["drift_every"])
    for task in out:
        task["noise"] = settings["noise"] if NETWORKS[task["config"]][1] else None
    return out


def run_task(task):
    """Trains one network (problems.build) in segments between checkpoints, the
    optimizer's momentum carried across them; at each checkpoint the test accuracy
    (net.predict) and the noise-free training loss; at every drift_every-th checkpoint
    the drift of the activation moments over one SGD step on the probe batch. Returns a
    JSON-able dict."""
    setup = task["setup"]
    net, X, y, (X_test, y_test) = problems.build(task)
    marks = checkpoint_steps(setup["steps"], setup["checkpoints"])
    rows = np.random.default_rng(derived_seed(task["seed"], 3)).permutation(len(X))
    X_probe = X[rows[:setup["probe_rows"]]]
    noise_rng = np.random.default_rng(derived_seed(task["seed"], 4))
    optimizer = problems.recipe_optimizer(setup)
    record = {"checkpoint_steps": marks, "test_accuracy": [], "train_loss": [],
              "drift_steps": [], "mean_drift": [], "var_drift": [], "diverged_at": None}
    state, step, losses = None, 0, {}

    def advance(count, key):
        """count SGD steps; the noise-free training loss before and after them (bnfast
        .train evaluates both) go to ``losses`` by step."""
        nonlocal state, step
        result = train(net, X, y, setup["lr"], count, batch_size=setup["batch_size"],
                       seed=derived_seed(task["seed"], 2, *key), record_every=count,
                       optimizer=optimizer, optimizer_state=state)
        losses[step], losses[step + count] = float(result.losses[0]), float(result.losses[-1])
        state, step = result.optimizer_state, step + count

    try:
        for index, mark in enumerate(marks):
            record["test_accuracy"].append(float(np.mean(net.predict(X_test).argmax(1)
                                                         == y_test)))
            if index + 1 == len(marks):
                break
            if index % task["drift_every"] == 0:
                before, _ = activation_moments(net, X_probe, noise_rng)
                advance(1, (index, 0))
                after, _ = activation_moments(net, X_probe, noise_rng)
                record["drift_steps"].append(mark)
                record["mean_drift"].append([float(np.mean(np.abs(a[0] - b[0])))
                                             for a, b in zip(before, after)])
                record["var_drift"].append([float(np.mean(np.abs(a[1] - b[1])))
                                            for a, b in zip(before, after)])
            if marks[index + 1] > step:
                advance(marks[index + 1] - step, (index, 1))
        record["train_loss"] = [losses[mark] for mark in marks]
    except TrainingDiverged as exc:
        record["diverged_at"] = step + exc.step
    return record


# --------------------------------------------------------------------------- verdict

def summaries(record, n=None):
    """The per-seed numbers of one run (higher is better), None for a diverged run:
    mean_accuracy (the rule's: mean test accuracy over checkpoints 1..n),
    final_accuracy, early_accuracy (over checkpoints 1..n/2), neg_log_loss (mean of
    -log10 of the training loss over checkpoints 1..n)."""
    if record["diverged_at"] is not None:
        return dict.fromkeys(("mean_accuracy", *ALTERNATIVES.values()))
    acc = np.asarray(record["test_accuracy"][1:], dtype=np.float64)
    loss = np.maximum(np.asarray(record["train_loss"][1:], dtype=np.float64), 1e-300)
    n = len(acc) if n is None else n
    return {"mean_accuracy": float(acc.mean()), "final_accuracy": float(acc[-1]),
            "early_accuracy": float(acc[:max(1, n // 2)].mean()),
            "neg_log_loss": float(np.mean(-np.log10(loss)))}


def judge(scores, margin_fraction=None, alpha=None):
    """The rule on one problem. scores : {"standard", "bn", "noisy_bn", ...} -> per-seed
    values where higher is better (paired by index; None for a diverged run). Returns
    (outcome, inputs): "supported", "refuted" or "undecided" as RULE states, by tests
    over seeds (stats.py)."""
    margin_fraction = RULE_PARAMS["margin_fraction"] if margin_fraction is None \
        else margin_fraction
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    inputs = {"per_seed": {k: list(scores[k]) for k in ("standard", "bn", "noisy_bn")}}
    if any(v is None for k in ("bn", "noisy_bn") for v in scores[k]):
        inputs["reason"] = "a BN or noisy-BN run diverged"
        return "refuted", inputs
    bn, noisy = (np.asarray(scores[k], dtype=np.float64) for k in ("bn", "noisy_bn"))
    if len(bn) < 2:
        raise ValueError("the rule needs at least 2 seeds")
    inputs["mean"] = {"bn": float(bn.mean()), "noisy_bn": float(noisy.mean())}
    inputs["noisy_minus_bn"] = float(noisy.mean() - bn.mean())
    if any(v is None for v in scores["standard"]):
        inputs["reason"] = "a standard run diverged: BN's gain, the margin, is undefined"
        return "undecided", inputs
    std = np.asarray(scores["standard"], dtype=np.float64)
    inputs["mean"]["standard"] = float(std.mean())
    level = 1.0 - 2.0 * alpha
    beats, loses = {}, {}
    for name, values in (("bn", bn), ("noisy_bn", noisy)):
        interval = stats.t_interval(values - std, level)      # > 0: this net beats standard
        beats[name] = bool(interval["low"] is not None and interval["low"] > 0)
        loses[name] = bool(interval["high"] is not None and interval["high"] < 0)
        inputs[f"{name}_minus_standard"] = interval
    gain = float(np.mean(bn - std))                           # BN's gain over standard
    inputs.update(bn_gain=gain, beats_standard=beats)
    if gain <= 0:
        inputs["reason"] = "BN does not do better than the standard net on average"
        return "refuted", inputs
    equivalence = stats.tost(noisy - bn, margin_fraction * gain, alpha)
    inputs["tost_noisy_minus_bn"] = equivalence
    keeps = equivalence["outcome"] in ("equivalent", "above")   # above: noisy better
    inputs["noisy_keeps_bn"] = bool(keeps)
    if keeps and all(beats.values()):
        return "supported", inputs
    if equivalence["outcome"] == "below" or any(loses.values()):
        return "refuted", inputs
    return "undecided", inputs


def noise_effect(scores, alpha=None):
    """The control (reported, not judged): per seed d = (standard - control) - (BN -
    noisy BN), what the noise costs the standard net minus what it costs the BN net,
    over the seeds where all four ran; its (1 - 2 alpha) t interval and its reading:
    "more on the standard net" (interval above 0), "more on the BN net" (below) or "no
    difference detected". scores as for judge, with "control"."""
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    seeds = [i for i in range(len(scores["standard"]))
             if all(scores[k][i] is not None for k in CONFIGS)]
    pick = {k: np.asarray([scores[k][i] for i in seeds], dtype=np.float64) for k in CONFIGS}
    cost_standard = pick["standard"] - pick["control"]
    cost_bn = pick["bn"] - pick["noisy_bn"]
    interval = stats.t_interval(cost_standard - cost_bn, 1.0 - 2.0 * alpha)
    if interval["low"] is not None and interval["low"] > 0:
        reading = "more on the standard net"
    elif interval["high"] is not None and interval["high"] < 0:
        reading = "more on the BN net"
    else:
        reading = "no difference detected"
    return {"control_diverged": sum(v is None for v in scores["control"]),
            "seeds": len(seeds),
            "cost_on_standard": float(cost_standard.mean()) if seeds else None,
            "cost_on_bn": float(cost_bn.mean()) if seeds else None,
            "difference": interval, "reading": reading}


def verdict_of(outcomes):
    """Version 2's mapping (result.combine) over the problems."""
    return combine({CONDITIONS[p]: o for p, o in outcomes.items()}, SETTING, reduced=True,
                   decide="more seeds: the equivalence interval of noisy BN - BN still "
                          "straddles the margin (half of BN's gain over the standard net), "
                          "or a net's interval against the standard net straddles 0")


def conclude(settings, results):
    """Per problem the rule's outcome (and the MLP extra's, reported); the verdict by
    result.combine over the CNN problems (RULE)."""
    grouped = {}
    for task, result in zip(tasks(settings, settings["seed"]), results):
        grouped.setdefault(task["problem"], {}).setdefault(task["config"], []).append(result)
    n = settings["checkpoints"]

    def scores(runs, summary):
        return {c: [summaries(r, n)[summary] for r in runs[c]] for c in settings["configs"]}

    outcomes, inputs, control, extra = {}, {}, {}, {}
    for problem, runs in grouped.items():
        outcome, values = judge(scores(runs, SUMMARY))
        values["outcome"] = outcome
        effect = noise_effect(scores(runs, SUMMARY))
        if problem in PROBLEMS:
            outcomes[problem], inputs[problem], control[problem] = outcome, values, effect
        else:
            extra[problem] = {"outcome": outcome, "inputs": values, "control": effect}
    verdict = verdict_of(outcomes)
    alternatives = {name: verdict_of({p: judge(scores(grouped[p], summary))[0]
                                      for p in outcomes}).label
                    for name, summary in ALTERNATIVES.items()}
    runs = {p: {c: _aggregate(r[c], n) for c in settings["configs"]}
            for p, r in grouped.items()}
    return verdict, {"outcomes": outcomes, "verdict_inputs": inputs, "control": control,
                     "extra": extra, "runs": runs, "drift_premise": _premise(grouped),
                     "alternatives": alternatives}


def _premise(grouped):
    """Figure 7's premise, reported: per problem, in how many seeds noisy BN's mean
    drift (mean over the drift checkpoints) exceeds the standard net's in every hidden
    layer."""
    out = {}
    for problem, runs in grouped.items():
        pairs = [(np.mean(a["mean_drift"], axis=0), np.mean(b["mean_drift"], axis=0))
                 for a, b in zip(runs["noisy_bn"], runs["standard"])
                 if a["diverged_at"] is None and b["diverged_at"] is None]
        out[problem] = {"seeds": len(pairs),
                        "noisy_drifts_more": int(sum(bool(np.all(a > b)) for a, b in pairs))}
    return out


def _aggregate(runs, n):
    """Across seeds: the per-seed summaries, the mean and std of the test accuracy and
    the mean training loss per checkpoint, the mean drift per drift checkpoint and
    layer."""
    finished = [r for r in runs if r["diverged_at"] is None]
    out = {"diverged": len(runs) - len(finished),
           **{key: [summaries(r, n)[key] for r in runs]
              for key in ("mean_accuracy", *ALTERNATIVES.values())}}
    if not finished:
        return out
    accuracy = np.array([r["test_accuracy"] for r in finished])
    losses = np.array([r["train_loss"] for r in finished])
    drift_mean = np.array([r["mean_drift"] for r in finished])   # (seeds, marks, layers)
    drift_var = np.array([r["var_drift"] for r in finished])
    out.update({
        "checkpoint_steps": finished[0]["checkpoint_steps"],
        "test_accuracy_mean": accuracy.mean(0).tolist(),
        "test_accuracy_std": accuracy.std(0).tolist(),
        "train_loss_mean": downsample(losses.mean(0)),
        "drift_steps": finished[0]["drift_steps"],
        "mean_drift": drift_mean.mean(0).tolist(),
        "var_drift": drift_var.mean(0).tolist(),
        "mean_drift_per_layer": drift_mean.mean((0, 1)).tolist(),
        "var_drift_per_layer": drift_var.mean((0, 1)).tolist(),
    })
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def summary(measurements):
    """Per problem: the outcome with its equivalence test, per network the mean test
    accuracy over the checkpoints and the final one, the drift per layer; the control's
    reading; the MLP extra."""
    lines = ["A = mean test accuracy over the checkpoints (noise free; mean over seeds), "
             "final test accuracy, drift of the activation moments over one SGD step "
             "(mean over drift checkpoints, per hidden layer)"]
    extra = measurements.get("extra", {})
    for problem, runs in measurements["runs"].items():
        judged = problem in measurements["verdict_inputs"]
        inputs = (measurements["verdict_inputs"][problem] if judged
                  else extra[problem]["inputs"])
        effect = (measurements["control"][problem] if judged
                  else extra[problem]["control"])
        tost = inputs.get("tost_noisy_minus_bn")
        if tost is not None and tost["low"] is not None:
            detail = (f"noisy - BN = {tost['mean']:.4g}, "
                      f"{1 - 2 * RULE_PARAMS['alpha']:.0%} interval [{tost['low']:.4g}, "
                      f"{tost['high']:.4g}] against the margin +-{tost['margin']:.4g} "
                      f"(half of BN's gain {inputs['bn_gain']:.4g}): {tost['outcome']}")
        else:
            detail = inputs.get("reason", "")
        lines.append(f"  {problem}{'' if judged else ' (reported extra)'}: outcome "
                     f"{inputs['outcome']} ({detail})")
        for config in CONFIGS:
            run = runs[config]
            if "test_accuracy_mean" not in run:
                lines.append(f"    {config:<9} diverged in every seed")
                continue
            lines.append(
                f"    {config:<9} A {_mean(run['mean_accuracy']):.4f}  final "
                f"{_mean(run['final_accuracy']):.4f}"
                + (f"  diverged {run['diverged']}" if run["diverged"] else "")
                + "  mean drift " + "/".join(f"{v:.3g}" for v in run["mean_drift_per_layer"])
                + "  var drift " + "/".join(f"{v:.3g}" for v in run["var_drift_per_layer"]))
        diff = effect["difference"]
        span = ("" if diff["low"] is None
                else f", interval [{diff['low']:.4g}, {diff['high']:.4g}]")
        lines.append(f"    control: the noise costs the standard net "
                     f"{figure(effect['cost_on_standard'])} and the BN net "
                     f"{figure(effect['cost_on_bn'])} of A (difference "
                     f"{figure(diff['mean'])}{span}: {effect['reading']}; control "
                     f"diverged in {effect['control_diverged']} seeds)")
        premise = measurements["drift_premise"][problem]
        lines.append(f"    Figure 7's premise: noisy BN's activation means drift more "
                     f"than the standard net's in every layer in "
                     f"{premise['noisy_drifts_more']} of {premise['seeds']} seeds")
    return lines


def headline(inputs):
    """The verdict's key figures: per problem the mean A of the three judged networks,
    noisy BN - BN against the margin, and the outcome."""
    parts = []
    for problem, v in inputs.items():
        mean = v.get("mean", {})
        tost = v.get("tost_noisy_minus_bn") or {}
        parts.append(f"{problem}: A standard {figure(mean.get('standard'))}, BN "
                     f"{figure(mean.get('bn'))}, noisy BN {figure(mean.get('noisy_bn'))} "
                     f"(noisy - BN {figure(v.get('noisy_minus_bn'))}, margin "
                     f"{figure(tost.get('margin'))}; {v['outcome']})")
    return "; ".join(parts)


RULE = (
    "Conditions: two problems, the MNIST-1D Conv1d CNN and the digits Conv2d CNN "
    "(problems.py; cross-entropy; PyTorch's momentum SGD, momentum 0.9, lr 0.05, "
    "batches of 100; 4,000 and 1,000 steps), "
    f"{RULE_PARAMS['seeds']} seeds, each seed's four networks from the same data, "
    "initial weights, batch order and noise seeds: standard, BN (over channels, before "
    "each ReLU), noisy BN (Algorithm 1 after each BN: n_mu 0.5, n_sigma 1.25, r_mu = "
    "r_sigma = 0.1, one draw per sample and channel) and the control (standard + the "
    "same noise at the same place). Per seed and network, A = the mean test accuracy "
    "(BN with its running statistics, no noise) at the "
    f"{RULE_PARAMS['checkpoints']} checkpoints k S/{RULE_PARAMS['checkpoints']}, k = 1.."
    f"{RULE_PARAMS['checkpoints']} (S the steps: the area under the test-accuracy "
    "curve of Figure 2, which rewards training faster as well as further). Per problem: "
    "BN's gain g = mean over seeds of (A_BN - A_standard); noisy BN keeps BN's "
    "performance if two one-sided t tests over seeds (alpha "
    f"{RULE_PARAMS['alpha']:g}) put the mean of (A_noisy - A_BN) inside +-"
    f"{RULE_PARAMS['margin_fraction']:g} g (noisy BN keeps at least half of BN's gain), "
    "or its interval lies wholly above +margin (noisy BN better); a net beats the "
    f"standard net if the {1 - 2 * RULE_PARAMS['alpha']:.0%} t interval of (A_net - "
    "A_standard) lies above 0. The problem supports the claim if noisy BN keeps BN's "
    "performance and both beat the standard net; refutes it if the interval of (A_noisy "
    "- A_BN) lies wholly below -margin, or BN or noisy BN is worse than the standard net "
    "(interval below 0), or g <= 0, or a BN or noisy-BN run diverges; else it is "
    "undecided (also when a standard run diverges). Verdict: supported (refuted) if both "
    "problems support (refute), mixed if one supports and the other refutes, else "
    "underpowered; the CNNs are reduced stand-ins for the paper's VGG on CIFAR-10, so a "
    "refutation reads 'refuted in the small CNNs on MNIST-1D and the 8x8 digits'. "
    "Reported, not judged: the control, the 90% t interval over seeds of (A_standard - "
    "A_control) - (A_BN - A_noisy) (above 0: the noise costs the standard net more than "
    "the BN net) and its diverged runs; the drift of each hidden conv layer's "
    "per-channel activation moments over one SGD step (Figure 7); the dense digits MLP "
    "(squared loss, plain SGD at lr 0.1, batch 64, 3,000 steps) under the same rule. "
    "Fragility: the same rule on the final test accuracy, on the mean test accuracy over "
    "the first half of the checkpoints, and on the mean of -log10 of the noise-free "
    "training loss at the checkpoints.")


TITLE = ("noisy BN trains like BN, better than the standard net (Santurkar et al. 2018, "
         "2.1, Alg. 1, Fig. 2, 7)")

EXPERIMENT = Experiment(
    name="noisy-bn",
    claim=("\"the performance difference between models with BatchNorm layers, and "
           "'noisy' BatchNorm layers is almost non-existent. Also, both these networks "
           "perform much better than standard networks. Moreover, the 'noisy' BatchNorm "
           "network has qualitatively less stable distributions than even the standard, "
           "non-BatchNorm network, yet it still performs better in terms of training.\""),
    source=("Santurkar, Tsipras, Ilyas, Madry, \"How Does Batch Normalization Help "
            "Optimization?\", NeurIPS 2018 (arXiv:1805.11604), section 2.1, Algorithm 1 "
            "(appendix), Figure 2 and Figure 7"),
    rule=RULE, rule_version=3, rule_params=RULE_PARAMS,
    settings=settings, tasks=tasks, run_task=run_task, conclude=conclude, summary=summary,
    headline=headline, order=3, title=TITLE)
