"""Noisy BN (Santurkar et al. 2018, section 2.1, Algorithm 1, Figures 2 and 7): BN with
injected, time-varying, non-zero-mean and non-unit-variance noise after every BN layer
trains like BN and better than the standard net, although its activations' distributions
are less stable than even the standard net's.

Three digits MLPs (64-100-100-10, ReLU, squared loss on one-hot targets, SGD) from the
same initial weights and batch order per seed: standard, BN, and noisy BN (BN with
bnfast.BNNoise, the paper's n_mu = 0.5, n_sigma = 1.25, r_mu = r_sigma = 0.1).

Distributional drift (the paper's Figure 7: the change of the first two moments of a
layer's activations between two successive training steps): for a fixed probe batch P
of training rows, per hidden layer l and unit j, z_lj is the input of the activation
function as training sees it (the pre-activation W a + b for the standard net; the BN
output for BN; the BN output with a fresh draw of Algorithm 1's noise for noisy BN).
At a checkpoint t, with the moments mean_j(t), var_j(t) over P,

    mean drift_l = (1/n_l) sum_j |mean_j(t+1) - mean_j(t)|,
    var drift_l  = (1/n_l) sum_j |var_j(t+1) - var_j(t)|,

t+1 being the parameters after the next SGD step (and, for noisy BN, the next noise draw).
"""

import math

import numpy as np

from ..nn import BNNoise, TrainingDiverged, train
from . import problems
from .measures import downsample, finite_or_none, internal_covariate_shift, median_cosine
from . import stats
from .result import combine
from .spec import Experiment, derived_seed

__all__ = ["EXPERIMENT", "activation_moments", "draw_noise", "CONFIGS"]

#: The networks compared, in order: (name, BN norm, noise).
CONFIGS = ("standard", "bn", "noisy_bn")
#: The rule's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "learning_rates": [0.1, 0.02], "steps": 3000,
               "alpha": 0.05, "margin_fraction": 0.5,
               "summary": "final training loss (noise free)"}
#: The setting the verdict is obtained in: a reduced stand-in for the paper's VGG.
SETTING = "the dense digits MLP (squared loss)"
#: The alternative summaries of the fragility line.
ALTERNATIVES = {"log10 of the final loss": "log10",
                "mean loss over the last tenth of training": "last_tenth",
                "final test error instead of training loss": "test_error"}
#: Algorithm 1's parameters as the paper sets them (BNNoise's defaults).
NOISE = BNNoise()


def draw_noise(rng, rows, units, noise):
    """One draw of Algorithm 1 for one layer: (scale (rows, units), shift (rows,
    units)); per unit j mu_j ~ U(-n_mu, n_mu), s0_j ~ U(1, n_sigma); per row i
    m_ij ~ U(mu_j - r_mu, mu_j + r_mu), s_ij ~ N(s0_j, r_sigma^2). rng : NumPy
    Generator; noise : BNNoise."""
    mu = rng.uniform(-noise.n_mu, noise.n_mu, units)
    s0 = rng.uniform(1.0, noise.n_sigma, units)
    shift = rng.uniform(mu - noise.r_mu, mu + noise.r_mu, (rows, units))
    scale = rng.normal(s0, noise.r_sigma, (rows, units))
    return scale, shift


def activation_moments(net, X, rng=None):
    """Per hidden (non-last) Dense layer, the (mean (units,), var (units,)) over the
    rows of X (m, in) of that layer's activation input z: W a + b, then BN with the
    batch statistics of X (biased variance, eps inside the root, gamma, beta) when the
    layer has BN, then, if the BN layer is noisy and rng (a NumPy Generator) is given,
    z <- s * z + m with a fresh draw of Algorithm 1. Computed in NumPy from
    net.unflatten(); without noise the last layer's z equals net.forward(X)."""
    A = np.asarray(X, dtype=np.float64)
    moments = []
    for index, (layer, p) in enumerate(zip(net.layers, net.unflatten())):
        Z = A @ p["W"].T + (p["b"] if "b" in p else 0.0)
        bn = layer.batch_norm
        if bn is not None:
            gamma, beta = (p["gamma"], p["beta"]) if bn.trainable else \
                bn.values(layer.out_features)
            Z = gamma * (Z - Z.mean(0)) / np.sqrt(Z.var(0) + bn.eps) + beta
            if bn.noise is not None and rng is not None:
                scale, shift = draw_noise(rng, *Z.shape, bn.noise)
                Z = scale * Z + shift
        if index + 1 < len(net.layers):
            moments.append((Z.mean(0), Z.var(0)))
        A = _ACTIVATIONS[layer.activation](Z)
    return moments, A


_ACTIVATIONS = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0.0),
                "tanh": np.tanh, "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z))}


# --------------------------------------------------------------------------- set-up

def settings(quick):
    """The digits set-up: SGD with batch 64 at two learning rates, several seeds."""
    reduced = [
        "the paper's VGG on CIFAR-10 is replaced by an MLP (64-100-100-10, ReLU, squared "
        "loss on one-hot targets) on scikit-learn's digits: a CPU budget, and the engine "
        "has no convolutions or cross-entropy",
        "\"the same noise on the standard net\" (docs/experiments/README.md) is not run: the "
        "engine draws Algorithm 1's noise inside a BN layer only (BatchNorm(noise=...)); a "
        "network with a BN layer is not the standard net, so it cannot be imitated "
        "honestly (the paper itself compares standard, BN and noisy BN only)",
        "distribution drift is measured at checkpoints (between the checkpoint's "
        "parameters and those one SGD step later), not at every step",
        "the losses and accuracies are noise free (the engine's forward/predict): the "
        "noisy net is trained with noise and evaluated without it",
    ]
    if quick:
        reduced.append("quick: 3 seeds, one learning rate, 300 steps (for tests and CI)")
    return {
        "hidden": [100, 100], "activation": "relu", "loss": "mean", "batch_size": 64,
        "learning_rates": [0.1] if quick else list(RULE_PARAMS["learning_rates"]),
        "steps": 300 if quick else RULE_PARAMS["steps"],
        "checkpoints": 5 if quick else 15,
        "record_every": 5 if quick else 15,
        "seeds": 3 if quick else RULE_PARAMS["seeds"],
        "probe_rows": 256,
        "noise": NOISE.to_dict(),
        "configs": list(CONFIGS),
        "learning_rate_note": (
            "0.1 is the largest of {0.5, 0.2, 0.1, 0.05} at which all three nets train "
            "without diverging on this problem (BN and noisy BN diverge at 0.2); 0.02 is "
            "a 5x smaller rate"),
        "reduced": reduced,
    }


def tasks(settings, seed):
    """One task per (learning rate, seed, network); the three networks of a seed share
    the data split, the initial Dense weights, the batch order and the probe batch."""
    out = []
    for lr in settings["learning_rates"]:
        for replicate in range(settings["seeds"]):
            shared = {"data_seed": derived_seed(seed, replicate, 1),
                      "init_seed": derived_seed(seed, replicate, 2),
                      "train_seed": derived_seed(seed, replicate, 3),
                      "probe_seed": derived_seed(seed, replicate, 4)}
            for config in settings["configs"]:
                out.append({"config": config, "lr": lr, "replicate": replicate,
                            **{k: settings[k] for k in ("hidden", "activation", "loss",
                                                        "batch_size", "steps",
                                                        "checkpoints", "record_every",
                                                        "probe_rows", "noise")},
                            **shared})
    return out


def _network(task):
    norm = None if task["config"] == "standard" else "std"
    noise = BNNoise(**task["noise"]) if task["config"] == "noisy_bn" else None
    return problems.digits_mlp(hidden=tuple(task["hidden"]), activation=task["activation"],
                               norm=norm, noise=noise, seed=task["init_seed"],
                               loss=task["loss"])


def run_task(task):
    """Trains one network in segments; at each checkpoint: test accuracy, training
    accuracy, drift of the activation moments over one SGD step, and ICS (on the probe
    batch's first batch_size rows). Returns a JSON-able dict."""
    X, Y, X_test, _, labels_test = problems.digits_data(task["data_seed"])
    labels = Y.argmax(1)
    net = _network(task)
    probe = np.random.default_rng(task["probe_seed"]).permutation(len(X))[:task["probe_rows"]]
    X_probe = X[probe]
    ics_rows = probe[:task["batch_size"]]
    noise_rng = np.random.default_rng(task["probe_seed"] + 1)
    marks = sorted({int(s) for s in np.linspace(0, task["steps"],
                                                task["checkpoints"] + 1).round()})
    record = {"checkpoint_steps": [], "test_accuracy": [], "train_accuracy": [],
              "mean_drift": [], "var_drift": [], "ics_cosine": [], "ics_l2": [],
              "loss_steps": [], "losses": [], "diverged_at": None}
    step = 0

    def train_steps(count, seed):
        nonlocal step
        every = max(1, min(task["record_every"], count))
        result = train(net, X, Y, task["lr"], count, batch_size=task["batch_size"],
                       seed=seed, record_every=every)
        steps = [step + every * k for k in range(len(result.losses))]
        values = [float(v) for v in result.losses]
        if steps[-1] != step + count:
            steps.append(step + count)
            values.append(float(net.loss(X, Y)))
        skip = 1 if record["loss_steps"] and record["loss_steps"][-1] == steps[0] else 0
        record["loss_steps"] += steps[skip:]
        record["losses"] += values[skip:]
        step += count

    try:
        for index, mark in enumerate(marks):
            record["checkpoint_steps"].append(mark)
            record["test_accuracy"].append(float(np.mean(
                net.predict(X_test).argmax(1) == labels_test)))
            record["train_accuracy"].append(float(np.mean(net.forward(X).argmax(1) == labels)))
            l2, cosine = internal_covariate_shift(
                net, X[ics_rows], Y[ics_rows],
                -task["lr"] * net.gradient(X[ics_rows], Y[ics_rows]))
            record["ics_l2"].append(finite_or_none(l2))
            record["ics_cosine"].append(finite_or_none(cosine))
            before, _ = activation_moments(net, X_probe, noise_rng)
            if index + 1 == len(marks):
                break
            # drift over one SGD step: the first step of the segment to the next mark
            train_steps(1, task["train_seed"] + 2 * index)
            after, _ = activation_moments(net, X_probe, noise_rng)
            record["mean_drift"].append([float(np.mean(np.abs(a[0] - b[0])))
                                         for a, b in zip(before, after)])
            record["var_drift"].append([float(np.mean(np.abs(a[1] - b[1])))
                                        for a, b in zip(before, after)])
            if marks[index + 1] - mark > 1:
                train_steps(marks[index + 1] - mark - 1, task["train_seed"] + 2 * index + 1)
    except TrainingDiverged as exc:
        record["diverged_at"] = step + exc.step
    finished = record["diverged_at"] is None
    record["final_loss"] = float(net.loss(X, Y)) if finished else None
    # The loss as training sees it (one draw of the noise for noisy BN; the same as
    # final_loss for the others): reported, not used by the rule.
    record["final_loss_with_noise"] = (
        float(np.sum((Y - activation_moments(net, X, noise_rng)[1]) ** 2) / len(X))
        if finished else None)
    return record


# --------------------------------------------------------------------------- verdict

def judge(losses, margin_fraction=None, alpha=None):
    """The rule at one learning rate. losses : {"standard", "bn", "noisy_bn"} -> list of
    per-seed values where lower is better (final training losses; paired by index; None
    for a diverged run). Returns (outcome, inputs): "supported", "refuted" or
    "undecided" as RULE states, by tests over seeds (stats.py)."""
    margin_fraction = RULE_PARAMS["margin_fraction"] if margin_fraction is None \
        else margin_fraction
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    inputs = {"final_loss": {k: list(v) for k, v in losses.items()}}
    if any(v is None for k in ("bn", "noisy_bn") for v in losses[k]):
        inputs["reason"] = "a BN or noisy-BN run diverged"
        return "refuted", inputs
    bn, noisy = (np.asarray(losses[k], dtype=np.float64) for k in ("bn", "noisy_bn"))
    n = len(bn)
    if n < 2:
        raise ValueError("the rule needs at least 2 seeds")
    inputs["mean_final_loss"] = {"bn": float(bn.mean()), "noisy_bn": float(noisy.mean())}
    inputs["noisy_minus_bn"] = float(noisy.mean() - bn.mean())
    if any(v is None for v in losses["standard"]):
        inputs["reason"] = "a standard run diverged: BN's gain, the margin, is undefined"
        return "undecided", inputs
    std = np.asarray(losses["standard"], dtype=np.float64)
    inputs["mean_final_loss"]["standard"] = float(std.mean())
    level = 1.0 - 2.0 * alpha
    beats, loses = {}, {}
    for name, values in (("bn", bn), ("noisy_bn", noisy)):
        interval = stats.t_interval(std - values, level)     # > 0: this net beats standard
        beats[name] = bool(interval["low"] is not None and interval["low"] > 0)
        loses[name] = bool(interval["high"] is not None and interval["high"] < 0)
        inputs[f"standard_minus_{name}"] = interval
    gain = float(np.mean(std - bn))                           # BN's gain over standard
    inputs.update(bn_gain=gain, beats_standard=beats)
    if gain <= 0:
        inputs["reason"] = "BN does not train better than the standard net on average"
        return "refuted", inputs
    equivalence = stats.tost(noisy - bn, margin_fraction * gain, alpha)
    inputs["tost_noisy_minus_bn"] = equivalence
    matches = equivalence["outcome"] in ("equivalent", "below")   # below: noisy better
    inputs["noisy_matches_bn"] = bool(matches)
    if matches and all(beats.values()):
        return "supported", inputs
    if equivalence["outcome"] == "above" or any(loses.values()):
        return "refuted", inputs
    return "undecided", inputs


def _per_seed(runs, config, summary):
    """One value per seed (lower is better) under a summary of the runs; None for a
    diverged run."""
    out = []
    for r in runs[config]:
        if r["final_loss"] is None:
            out.append(None)
        elif summary == "final":
            out.append(r["final_loss"])
        elif summary == "log10":
            out.append(math.log10(r["final_loss"]) if r["final_loss"] > 0 else -math.inf)
        elif summary == "last_tenth":
            tail = r["losses"][-max(1, len(r["losses"]) // 10):]
            out.append(float(np.mean(tail)))
        elif summary == "test_error":
            out.append(1.0 - r["test_accuracy"][-1])
        else:
            raise ValueError(summary)
    return out


def verdict_of(outcomes):
    """Version 2's mapping (result.combine) over the learning rates."""
    return combine({f"lr {lr}": o for lr, o in outcomes.items()}, SETTING, reduced=True,
                   decide="more seeds: the equivalence interval of noisy BN - BN still "
                          "straddles the margin (half of BN's gain over the standard net)")


def conclude(settings, results):
    """Per learning rate the rule's outcome; the verdict by result.combine (RULE)."""
    task_list = tasks(settings, settings["seed"])
    grouped = {}
    for task, result in zip(task_list, results):
        grouped.setdefault(f"{task['lr']:g}", {}).setdefault(task["config"], []).append(result)
    outcomes, inputs, per_lr = {}, {}, {}
    for lr, runs in grouped.items():
        outcomes[lr], inputs[lr] = judge({c: _per_seed(runs, c, "final")
                                          for c in settings["configs"]})
        inputs[lr]["outcome"] = outcomes[lr]
        per_lr[lr] = {config: _aggregate(runs[config]) for config in settings["configs"]}
    verdict = verdict_of(outcomes)
    alternatives = {}
    for name, summary_name in ALTERNATIVES.items():
        alt = {lr: judge({c: _per_seed(runs, c, summary_name)
                          for c in settings["configs"]})[0]
               for lr, runs in grouped.items()}
        alternatives[name] = verdict_of(alt).label
    return verdict, {"outcomes": outcomes, "runs": per_lr, "verdict_inputs": inputs,
                     "alternatives": alternatives}


def _aggregate(runs):
    """Across seeds: mean and std of the downsampled loss curve, mean test/train
    accuracy per checkpoint, mean drift per checkpoint and layer, ICS medians."""
    finished = [r for r in runs if r["diverged_at"] is None]
    out = {"diverged": sum(r["diverged_at"] is not None for r in runs),
           "final_loss": [r["final_loss"] for r in runs],
           "final_loss_with_noise": [r["final_loss_with_noise"] for r in runs],
           "final_test_accuracy": [r["test_accuracy"][-1] for r in finished]}
    if not finished:
        return out
    losses = np.array([r["losses"] for r in finished])
    index = downsample(np.arange(losses.shape[1]))
    index = [int(i) for i in index]
    drift_mean = np.array([r["mean_drift"] for r in finished])   # (seeds, marks, layers)
    drift_var = np.array([r["var_drift"] for r in finished])
    out.update({
        "loss_steps": [int(finished[0]["loss_steps"][i]) for i in index],
        "loss_mean": losses.mean(0)[index].tolist(),
        "loss_std": losses.std(0)[index].tolist(),
        "checkpoint_steps": finished[0]["checkpoint_steps"],
        "test_accuracy_mean": np.mean([r["test_accuracy"] for r in finished], 0).tolist(),
        "train_accuracy_mean": np.mean([r["train_accuracy"] for r in finished], 0).tolist(),
        "mean_drift": drift_mean.mean(0).tolist(),
        "var_drift": drift_var.mean(0).tolist(),
        "mean_drift_per_layer": drift_mean.mean((0, 1)).tolist(),
        "var_drift_per_layer": drift_var.mean((0, 1)).tolist(),
        "ics_median_cosine": _median([median_cosine(r["ics_cosine"]) for r in finished]),
        "ics_median_l2": float(np.median([np.median(np.asarray(r["ics_l2"])[:, 1:])
                                          for r in finished])),
    })
    return out


def summary(measurements):
    """Per learning rate: final training loss (mean over seeds) and test accuracy of the
    three nets, the activation drift per layer, ICS cosine, and the outcome."""
    lines = ["final training loss (noise free, mean over seeds), test accuracy, drift of "
             "the activation moments over one SGD step (mean over checkpoints), ICS cos "
             "(noise-free gradients: for noisy BN, of its weights without the noise)"]
    for lr, runs in measurements["runs"].items():
        inputs = measurements["verdict_inputs"][lr]
        tost = inputs.get("tost_noisy_minus_bn")
        if tost is not None and tost["low"] is not None:
            detail = (f" (noisy - BN = {tost['mean']:.4g}, {1 - 2 * RULE_PARAMS['alpha']:.0%}"
                      f" interval [{tost['low']:.4g}, {tost['high']:.4g}] against the "
                      f"margin +-{tost['margin']:.4g}: {tost['outcome']})")
        elif "bn_seed_std" in inputs:         # a version-1 result
            detail = (f" (noisy - BN = {inputs['noisy_minus_bn']:.4g}, 2 x BN seed std "
                      f"= {2 * inputs['bn_seed_std']:.4g})")
        else:
            detail = f" ({inputs.get('reason', '')})"
        lines.append(f"  lr {lr}: outcome {inputs['outcome']}{detail}")
        for config in CONFIGS:
            run = runs[config]
            if "loss_mean" not in run:
                lines.append(f"    {config:<9} diverged in every seed")
                continue
            losses = [v for v in run["final_loss"] if v is not None]
            lines.append(
                f"    {config:<9} loss {np.mean(losses):.4g} +- {np.std(losses):.2g}  "
                f"test acc {np.mean(run['final_test_accuracy']):.3f}"
                + (f"  loss with noise {_mean(run['final_loss_with_noise']):.4g}"
                   if config == "noisy_bn" else "")
                + "  mean drift "
                + "/".join(f"{v:.3g}" for v in run["mean_drift_per_layer"])
                + "  var drift " + "/".join(f"{v:.3g}" for v in run["var_drift_per_layer"])
                + "  ICS cos " + ("n/a" if run["ics_median_cosine"] is None
                                  else f"{run['ics_median_cosine']:.3f}"))
    return lines


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan



def headline(inputs):
    """The verdict's key figures: per learning rate, the mean final losses and the
    outcome."""
    from .result import figure
    return "; ".join(
        f"lr {lr}: mean final loss standard "
        f"{figure(v['mean_final_loss'].get('standard'))}, "
        f"BN {figure(v['mean_final_loss']['bn'])}, noisy BN "
        f"{figure(v['mean_final_loss']['noisy_bn'])} (noisy - BN {figure(v.get('noisy_minus_bn'))}"
        f"; {v['outcome']})" for lr, v in inputs.items())


RULE = (f"Per learning rate (0.1 and 0.02; {RULE_PARAMS['seeds']} paired seeds, "
        f"{RULE_PARAMS['steps']:,} SGD steps), on the final training loss (noise free) of "
        "each seed: BN's gain g = mean over seeds of (standard - BN); noisy BN matches BN "
        "if two one-sided t tests over seeds (alpha "
        f"{RULE_PARAMS['alpha']:g}) put the mean of (noisy BN - BN) inside +-"
        f"{RULE_PARAMS['margin_fraction']:g} g (noisy BN keeps at least half of BN's "
        "gain; an interval wholly below -margin, noisy BN better, also matches); a net "
        f"beats the standard net if the {1 - 2 * RULE_PARAMS['alpha']:.0%} t interval of "
        "(standard - net) over seeds lies above 0. The learning rate supports the claim "
        "if noisy BN matches BN and both beat the standard net; refutes it if the "
        "interval of (noisy BN - BN) lies above the margin, or BN or noisy BN is worse "
        "than the standard net (interval below 0), or g <= 0, or a BN/noisy-BN run "
        "diverges; else it is undecided (also when a standard run diverges). Verdict "
        "(version 2): supported (refuted) if every learning rate supports (refutes), "
        "mixed if one supports and another refutes, else underpowered; obtained on the "
        "dense digits MLP, a reduced stand-in for the paper's VGG, a refutation reads "
        "'refuted in the dense digits MLP (squared loss)'. Fragility: the same rule on "
        "log10 of the final loss, on the mean loss over the last tenth of training, and "
        "on the final test error.")


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
    rule=RULE, rule_version=2, rule_params=RULE_PARAMS,
    settings=settings, tasks=tasks, run_task=run_task, conclude=conclude, summary=summary, headline=headline,
    order=3)
