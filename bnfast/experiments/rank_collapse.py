"""BN avoids rank collapse in randomly initialised deep networks (Daneshmand, Kohler,
Bach, Hofmann, Lucchi, "Batch normalization provably avoids rank collapse for randomly
initialised deep networks", NeurIPS 2020, arXiv:2003.01652).

The claim (abstract): "the rank of the intermediate representations in unnormalized
networks collapses quickly with depth"; "batch normalization is an effective strategy
to avoid rank collapse for both linear and ReLU networks"; for deep linear networks the
paper derives "a meaningful lower rank bound". The bound (its main theorem, as we
restate it; docs/experiments/rank_collapse.md says what was and was not available to check the
statement): for the chain H_{l+1} = BN(W_l H_l) of a linear network of width d with
i.i.d. Gaussian W_l, the rank of the representations, averaged over the layers of an
infinitely deep network, is bounded below by Omega(sqrt(d)), almost surely; without BN
the same chain is a product of random matrices, whose singular values spread
exponentially with depth (the Lyapunov spectrum of Gaussian products: sigma_k/sigma_1
~ exp(-l (k - 1)/(2 d)) after l layers of width d), so the stable rank tends to 1.

The rank measure: the stable rank sr(Z) = ||Z||_F^2 / ||Z||_2^2 (1 <= sr <= rank) of the
batch's representation Z (m rows, d features) at the input of each layer's
nonlinearity: BN(W h) with BN, W h without (for linear networks the layer's output).
Measured there because a ReLU's output carries the batch's common mean (about 1/pi of
its second moment for Gaussian pre-activations), which caps its stable rank near pi
whatever the representation's spread; the post-ReLU stable rank is a fragility
alternative, and so is a soft rank (the number of singular values above 0.1 sigma_1).

Set-up: MLPs of width d in {32, 64, 128, 256} and 256 layers, linear and ReLU, with
BN (gamma 1, beta 0, PyTorch's eps) before every nonlinearity and without, at
initialization: W ~ N(0, 1/d) for linear layers, N(0, 2/d) (He) for ReLU layers (the
variance-preserving scalings; BN does not see the scale); a batch of 256 Gaussian
inputs standardised per feature; the BN and the plain network of a seed share weights
and inputs. Each layer is a bnfast Network of one Dense layer evaluated by the
engine's forward (batch statistics); the ReLU is applied here (tests check that the
composition equals the engine's forward of the whole network).
"""

import math

import numpy as np

from ..nn import BatchNorm, Dense, Network
from .result import combine, figure
from ..executors import one_blas_thread
from .spec import Experiment, derived_seed
from .stats import decide_side, sign_test

__all__ = ["EXPERIMENT", "layer_weights", "propagate", "record_depths", "spectrum_ranks",
           "verdict_of", "width_exponent"]

CLAIM = ("Without batch normalization, the rank of the hidden representations of a "
         "batch collapses quickly with depth in randomly initialised deep networks, "
         "linear and ReLU; with batch normalization it does not: for deep linear "
         "networks of width d the rank stays bounded below by Omega(sqrt(d)), and the "
         "same rank robustness holds empirically for ReLU networks.")
SOURCE = ("Daneshmand, Kohler, Bach, Hofmann, Lucchi, 'Batch normalization provably "
          "avoids rank collapse for randomly initialised deep networks', NeurIPS 2020 "
          "(arXiv:2003.01652), abstract, the lower rank bound for linear BN networks "
          "(its main theorem) and its empirical counterpart for ReLU networks.")
TITLE = ("BN avoids rank collapse at init: rank >= Omega(sqrt(width)) with BN, "
         "-> 1 without (Daneshmand et al. 2020)")

ACTIVATIONS = ("linear", "relu")
NORMS = ("bn", "none")
#: The rule's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 10, "widths": [32, 64, 128, 256], "batch": 256, "depth": 256,
               "record_every": 4, "collapse_threshold": 2.0, "exponent": 0.5,
               "exponent_margin": 0.1, "decay_floor": 0.8, "level": 0.90,
               "soft_rank_tau": 0.1, "eps": 1e-5}
SETTING = ("Gaussian-initialised MLPs of widths 32-256 and 256 layers at "
           "initialization, batch 256")
RULE = (
    f"Version 1. {RULE_PARAMS['seeds']} seeds (independent weights and input batches "
    f"of {RULE_PARAMS['batch']} standardised Gaussian rows), each running, for every "
    f"width d in {RULE_PARAMS['widths']} and activation (linear, ReLU), an MLP of "
    f"{RULE_PARAMS['depth']} layers with BN before every nonlinearity and the same MLP "
    "without BN (the same weights and inputs; W ~ N(0, 1/d) linear, N(0, 2/d) ReLU). "
    "Measured: the stable rank sr = ||Z||_F^2/||Z||_2^2 of the batch's representation "
    "Z at the input of each layer's nonlinearity (BN(W h) with BN, W h without), at "
    f"layers 1-8 and every {RULE_PARAMS['record_every']}th. Conditions, each judged by "
    f"the two-sided {RULE_PARAMS['level']:.0%} Student-t interval over seeds of the "
    "mean of a per-seed number: (collapse, per activation and width, without BN) sr at "
    f"the last layer: supported if the interval lies below "
    f"{RULE_PARAMS['collapse_threshold']:g} (more than half of the batch's energy in one "
    "direction), refuted if it lies above; (no decay, per activation and width, with "
    "BN) the mean sr over layers 3L/4..L over the mean over L/4..L/2: supported if the "
    f"interval lies above {RULE_PARAMS['decay_floor']:g}, refuted if it lies below (a "
    "rank bounded below does not keep falling with depth); (sqrt(d), per activation, "
    "with BN) the least-squares slope over the widths of log(mean sr over layers "
    "L/2..L) against log d (Omega(sqrt(d)): exponent 1/2): supported if the interval "
    f"lies above {RULE_PARAMS['exponent'] - RULE_PARAMS['exponent_margin']:g} "
    f"(1/2 less a margin of {RULE_PARAMS['exponent_margin']:g}: a factor 8^0.1 = 1.23 "
    "in rank over the widths, for the constants an Omega leaves free), refuted if it "
    "lies below; otherwise undecided. 18 conditions; the verdict: result.combine "
    "(supported if all support, refuted if all refute, mixed if some support and some "
    "refute, else underpowered), a refutation only 'in' this reduced setting (finite "
    "depth for a statement about infinitely deep networks). Compared with the bound: "
    "the mean sr/sqrt(d) per width (the constant the Omega hides). Fragility "
    "alternatives: the last layer in place of the window means (no decay: sr(L) over "
    "sr(L/2)); the exact sign test in place of the t interval (one-sided, 5%); the soft "
    f"rank (singular values >= {RULE_PARAMS['soft_rank_tau']:g} sigma_1) in place of "
    "sr; the post-activation representation; collapse threshold 1.5; exponent margin 0; "
    "95% intervals.")


def settings(quick):
    """The set-up: widths, batch, depth, seeds, thresholds."""
    keys = ("collapse_threshold", "exponent", "exponent_margin", "decay_floor", "level",
            "soft_rank_tau", "eps")
    if quick:
        return {"seeds": 3, "widths": [16, 32, 64], "batch": 64, "depth": 64,
                "record_every": 4, **{k: RULE_PARAMS[k] for k in keys},
                "reduced": [
                    "quick: 3 seeds, widths 16-64, batch 64, 64 layers (the full run: "
                    "10 seeds, widths 32-256, batch 256, 256 layers)", *_REDUCED]}
    return {**{k: RULE_PARAMS[k] for k in ("seeds", "widths", "batch", "depth",
                                           "record_every") + keys},
            "reduced": list(_REDUCED)}


_REDUCED = [
    "finite depth (256 layers) for a bound on the average over infinitely many layers, "
    "and widths 32-256 for an asymptotic Omega(sqrt(d)) (a CPU budget)",
    "BN as in practice (mean and variance over the batch, eps 1e-5, gamma 1, beta 0); "
    "the theorem's BN divides by the rows' norms without centring, which the paper "
    "reports changes nothing qualitatively",
    "Gaussian inputs only; the paper's training experiments on real data (and its "
    "rank-raising pre-training) are not reproduced",
]


def tasks(settings, seed):
    """One task per (seed, width, activation, norm); the four networks of a (seed,
    width) share the input batch and the Gaussian draws of the weights."""
    out = []
    for r in range(settings["seeds"]):
        for width in settings["widths"]:
            for activation in ACTIVATIONS:
                for norm in NORMS:
                    out.append({"replicate": r, "width": width, "activation": activation,
                                "norm": norm, "batch": settings["batch"],
                                "depth": settings["depth"],
                                "record_every": settings["record_every"],
                                "soft_rank_tau": settings["soft_rank_tau"],
                                "eps": settings["eps"],
                                "seed": derived_seed(seed, r, width)})
    return out


def record_depths(depth, every):
    """The layers measured: 1..8 and every ``every``-th up to ``depth`` (sorted)."""
    return sorted(set(range(1, min(8, depth) + 1)) | set(range(every, depth + 1, every)))


def layer_weights(width, activation, rng):
    """W (width, width) ~ N(0, gain/width), gain 1 (linear) or 2 (ReLU, He)."""
    gain = 2.0 if activation == "relu" else 1.0
    return rng.standard_normal((width, width)) * math.sqrt(gain / width)


def spectrum_ranks(Z, tau):
    """(stable rank ||Z||_F^2/||Z||_2^2, soft rank #{sigma_i >= tau sigma_1}) of Z
    (m, d), from the eigenvalues of the d x d Gram matrix Z^T Z."""
    eigenvalues = np.linalg.eigvalsh(Z.T @ Z)
    top = eigenvalues[-1]
    if not top > 0.0:
        return 0.0, 0
    return float(eigenvalues.sum() / top), int(np.sum(eigenvalues >= tau * tau * top))


def propagate(X, activation, norm, depth, rng, record, tau, eps=1e-5):
    """Runs ``depth`` layers from X (m, d): Z_l = BN(W_l h_{l-1}) (or W_l h_{l-1}), h_l =
    phi(Z_l), the affine part by the engine's forward of a one-layer Network; weights
    from ``rng`` (layer_weights, the same draws whatever the norm). Returns dict:
    "depths" (the recorded layers), "stable", "soft" (of Z_l), "stable_post" (of h_l;
    the same as "stable" for linear layers), each a list over the recorded layers, and
    "output" h_depth (an array)."""
    width = X.shape[1]
    layer = Network([Dense(width, width, bias=False,
                           **({"batch_norm": BatchNorm(eps=eps)} if norm == "bn"
                              else {}))])
    base = layer.params
    where, shape = layer.param_layout()[0]["W"]
    wanted = set(record)
    h = np.asarray(X, dtype=np.float64)
    out = {"depths": [], "stable": [], "soft": [], "stable_post": []}
    for l in range(1, depth + 1):
        params = base.copy()
        params[where] = layer_weights(width, activation, rng).ravel()
        layer.params = params
        Z = layer.forward(h)
        h = np.maximum(Z, 0.0) if activation == "relu" else Z
        if l in wanted:
            stable, soft = spectrum_ranks(Z, tau)
            out["depths"].append(l)
            out["stable"].append(stable)
            out["soft"].append(soft)
            out["stable_post"].append(spectrum_ranks(h, tau)[0]
                                      if activation == "relu" else stable)
    out["output"] = h
    return out


def inputs(width, batch, rng):
    """A batch (batch, width) of Gaussian rows, standardised per feature."""
    X = rng.standard_normal((batch, width))
    return (X - X.mean(axis=0)) / X.std(axis=0)


def run_task(task):
    """One network of one seed: the ranks along depth."""
    with one_blas_thread():
        rng = np.random.default_rng(task["seed"])
        X = inputs(task["width"], task["batch"], rng)
        weights_rng = np.random.default_rng(derived_seed(task["seed"], 1))
        run = propagate(X, task["activation"], task["norm"], task["depth"], weights_rng,
                        record_depths(task["depth"], task["record_every"]),
                        task["soft_rank_tau"], task["eps"])
        run.pop("output")
        stable0, soft0 = spectrum_ranks(X, task["soft_rank_tau"])
        return {"replicate": task["replicate"], "width": task["width"],
                "activation": task["activation"], "norm": task["norm"],
                "input_stable": stable0, "input_soft": soft0, **run}


def _group(results):
    """{(activation, norm, width): [task results in seed order]}."""
    groups = {}
    for r in results:
        groups.setdefault((r["activation"], r["norm"], r["width"]), []).append(r)
    for rows in groups.values():
        rows.sort(key=lambda r: r["replicate"])
    return groups


def _window(row, key, low, high):
    """The mean of row[key] over the recorded layers l with low <= l <= high."""
    values = [v for l, v in zip(row["depths"], row[key]) if low <= l <= high]
    return float(np.mean(values))


def _tail(row, key, depth, deepest):
    """The per-seed rank the sqrt(d) condition uses: the mean over layers L/2..L (the
    theorem's average over depth), or the last layer's (deepest)."""
    return row[key][-1] if deepest else _window(row, key, depth / 2, depth)


def width_exponent(widths, ranks):
    """The least-squares slope of log(ranks) against log(widths)."""
    return float(np.polyfit(np.log(widths), np.log(ranks), 1)[0])


def _decide(values, above, threshold, level, test):
    """stats.decide_side of the seeds' values against ``threshold`` (above: the claim's
    side is above it), with the sign test's counts in the summary. Returns (outcome,
    summary dict)."""
    values = [float(v) for v in values]
    label, summary = decide_side(values, threshold, level, test, above=above)
    if test == "sign":
        counts = sign_test([v - threshold for v in values])
        summary.update(above=counts["positive"], below=counts["negative"])
    return label, summary


def verdict_of(results, settings, key="stable", deepest=False, test="t", level=None,
               threshold=None, exponent_floor=None):
    """(Verdict, rows) by the rule (RULE) on the task results; the keyword arguments
    are the fragility alternatives: key "soft" or "stable_post" for the measure,
    deepest for the last layer in place of the window means, test "sign", and the
    level, collapse threshold and exponent floor."""
    level = settings["level"] if level is None else level
    threshold = settings["collapse_threshold"] if threshold is None else threshold
    floor = (settings["exponent"] - settings["exponent_margin"]
             if exponent_floor is None else exponent_floor)
    depth, widths = settings["depth"], settings["widths"]
    groups = _group(results)
    conditions, rows = {}, []

    def judge(name, kind, activation, width, values, above, bar):
        label, summary = _decide(values, above, bar, level, test)
        conditions[name] = label
        rows.append({"condition": name, "kind": kind, "activation": activation,
                     "width": width, "outcome": label, "threshold": bar,
                     "seeds": len(values), **summary})

    for activation in ACTIVATIONS:
        for width in widths:
            plain = groups.get((activation, "none", width), [])
            if plain:
                judge(f"no BN {activation} d={width}: collapse", "collapse", activation,
                      width, [r[key][-1] for r in plain], False, threshold)
            normed = groups.get((activation, "bn", width), [])
            if normed:
                if deepest:
                    values = [r[key][-1] / _window(r, key, depth / 2, depth / 2)
                              for r in normed]
                else:
                    values = [_window(r, key, 3 * depth / 4, depth)
                              / _window(r, key, depth / 4, depth / 2) for r in normed]
                judge(f"BN {activation} d={width}: no decay", "no decay", activation,
                      width, values, True, settings["decay_floor"])
        per_width = [groups.get((activation, "bn", w), []) for w in widths]
        if len(widths) >= 2 and all(per_width):
            seeds = min(len(rows_) for rows_ in per_width)
            slopes = [width_exponent(widths, [_tail(per_width[i][s], key, depth, deepest)
                                              for i in range(len(widths))])
                      for s in range(seeds)]
            judge(f"BN {activation}: rank grows like sqrt(d)", "sqrt(d)", activation,
                  None, slopes, True, floor)
    verdict = combine(conditions, SETTING, reduced=True, decide=(
        "more seeds, or deeper networks for the collapse of the widest plain networks"))
    return verdict, rows


#: The fragility alternatives: name -> keyword arguments of verdict_of.
ALTERNATIVES = {
    "last layer in place of the window means": {"deepest": True},
    "sign test in place of the t interval": {"test": "sign"},
    "soft rank (sigma_i >= 0.1 sigma_1) in place of the stable rank": {"key": "soft"},
    "post-activation representation": {"key": "stable_post"},
    "collapse threshold 1.5": {"threshold": 1.5},
    "exponent margin 0 (slope above 1/2)": {"exponent_floor": 0.5},
    "95% intervals": {"level": 0.95},
}


def _curves(rows, key):
    values = np.array([r[key] for r in rows], dtype=np.float64)
    return {"mean": values.mean(axis=0).tolist(),
            "p10": np.quantile(values, 0.1, axis=0).tolist(),
            "p90": np.quantile(values, 0.9, axis=0).tolist()}


def conclude(settings, results):
    """Verdict by RULE; curves per network, the comparison with sqrt(d), the table of
    conditions and the alternatives."""
    verdict, rows = verdict_of(results, settings)
    alternatives = {name: verdict_of(results, settings, **kwargs)[0].label
                    for name, kwargs in ALTERNATIVES.items()}
    groups = _group(results)
    depth, widths = settings["depth"], settings["widths"]
    curves = []
    for (activation, norm, width), group in sorted(groups.items()):
        curves.append({"activation": activation, "norm": norm, "width": width,
                       "depths": group[0]["depths"],
                       "stable": _curves(group, "stable"),
                       "soft": _curves(group, "soft"),
                       "input_stable": float(np.mean([r["input_stable"] for r in group]))})
    bound = []
    for activation in ACTIVATIONS:
        for width in widths:
            group = groups.get((activation, "bn", width), [])
            if not group:
                continue
            tail = float(np.mean([_tail(r, "stable", depth, False) for r in group]))
            plain = groups.get((activation, "none", width), [])
            soft = float(np.mean([_tail(r, "soft", depth, False) for r in group]))
            bound.append({"activation": activation, "width": width,
                          "bn_tail_stable_rank": tail, "bn_tail_soft_rank": soft,
                          "over_sqrt_width": tail / math.sqrt(width),
                          "plain_last_stable_rank": float(np.mean(
                              [r["stable"][-1] for r in plain])) if plain else None})
    counts = {k: sum(r["outcome"] == k for r in rows)
              for k in ("supported", "refuted", "undecided")}
    exponents = {r["activation"]: [r["mean"], r["low"], r["high"]]
                 for r in rows if r["kind"] == "sqrt(d)"}
    collapse = {a: max((r["mean"] for r in rows if r["kind"] == "collapse"
                        and r["activation"] == a), default=None) for a in ACTIVATIONS}
    decay = {a: min((r["mean"] for r in rows if r["kind"] == "no decay"
                     and r["activation"] == a), default=None) for a in ACTIVATIONS}
    constant = {a: min((b["over_sqrt_width"] for b in bound if b["activation"] == a),
                       default=None) for a in ACTIVATIONS}
    inputs_ = {"conditions": len(rows), **counts, "width_exponent": exponents,
               "largest_plain_last_stable_rank": collapse,
               "smallest_bn_decay_ratio": decay,
               "smallest_bn_rank_over_sqrt_width": constant,
               "collapse_threshold": settings["collapse_threshold"],
               "exponent_floor": settings["exponent"] - settings["exponent_margin"]}
    return verdict, {"conditions": rows, "curves": curves, "bound": bound,
                     "alternatives": alternatives, "verdict_inputs": inputs_}


def summary(measurements):
    """The lines of the terminal report."""
    inputs_ = measurements["verdict_inputs"]
    lines = [f"{inputs_['supported']} of {inputs_['conditions']} conditions supported, "
             f"{inputs_['refuted']} refuted, {inputs_['undecided']} undecided"]
    for activation in ACTIVATIONS:
        exponent = inputs_["width_exponent"].get(activation)
        if exponent is not None:
            lines.append(
                f"{activation}, BN: stable rank ~ d^{figure(exponent[0])} (90% interval "
                f"[{figure(exponent[1])}, {figure(exponent[2])}]; sqrt(d) is d^0.5); "
                f"smallest mean sr/sqrt(d) {figure(inputs_['smallest_bn_rank_over_sqrt_width'][activation])}; "
                f"smallest late/mid ratio {figure(inputs_['smallest_bn_decay_ratio'][activation])}")
        lines.append(f"{activation}, no BN: largest mean stable rank at the last layer "
                     f"{figure(inputs_['largest_plain_last_stable_rank'][activation])} "
                     f"(collapse: below {inputs_['collapse_threshold']:g})")
    for row in measurements["bound"]:
        lines.append(f"  {row['activation']:<6} d={row['width']:<4} BN sr (layers "
                     f"L/2..L) {figure(row['bn_tail_stable_rank'])} = "
                     f"{figure(row['over_sqrt_width'])} sqrt(d), soft rank "
                     f"{figure(row['bn_tail_soft_rank'])}; no BN sr(L) "
                     f"{figure(row['plain_last_stable_rank'])}")
    for row in measurements["conditions"]:
        ci = ("" if row["low"] is None else
              f" [{figure(row['low'])}, {figure(row['high'])}]")
        lines.append(f"  {row['condition']}: {figure(row['mean'])}{ci} vs "
                     f"{figure(row['threshold'])}: {row['outcome']}")
    return lines


def headline(inputs_):
    """The verdict's key figures: the width exponents with BN, the plain networks'
    largest final stable rank."""
    exponents = ", ".join(f"{a} d^{figure(v[0])}" for a, v in
                          inputs_["width_exponent"].items())
    plain = ", ".join(f"{a} {figure(v)}" for a, v in
                      inputs_["largest_plain_last_stable_rank"].items())
    return (f"{inputs_['supported']}/{inputs_['conditions']} conditions supported; BN "
            f"stable rank {exponents}; without BN, final stable rank at most {plain}")


EXPERIMENT = Experiment(name="rank-collapse", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=1, rule_params=RULE_PARAMS, settings=settings,
                        tasks=tasks, run_task=run_task, conclude=conclude,
                        summary=summary, headline=headline, order=21, title=TITLE)
