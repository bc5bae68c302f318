"""BN biases residual blocks towards the identity at initialization
(De and Smith, "Batch normalization biases residual blocks towards the identity function
in deep networks", NeurIPS 2020, arXiv:2002.10444).

The claim (abstract): "at initialization, batch normalization downscales the residual
branch relative to the skip connection, by a normalizing factor on the order of the
square root of the network depth". The argument behind it, from first principles
(docs/experiments/residual_identity.md spells it out): in a residual network
x_l = x_{l-1} + f_l(x_{l-1}) (blocks l = 1..D, x_0 the first block's input) whose
branch f_l is uncorrelated with its input at initialization,

    Var(x_l) = Var(x_{l-1}) + Var(f_l).

"Var" is the paper's: over the random weights and the inputs, where the mean is 0 by
the sign symmetry of the weights, i.e. the second moment; it is measured here as
q_l = mean(x_l^2) over the batch, the channels (and the positions of a convolution).

- With BN at the start of the branch (ResNet-V2: BN-ReLU-W1-BN-ReLU-W2, He-initialised
  W1 and W2), the branch's second moment is 1 up to BN's eps, whatever x_{l-1}: so
  q_l = q_0 + l (linear growth), and the share of block l's output that its branch
  carries is rho_l = Var(f_l)/Var(x_l) = 1/(q_0 + l): the branch is scaled down
  relative to the skip path by sqrt(q_0 + l) ~ sqrt(depth).
- Without normalization (ReLU-W1-ReLU-W2, He init), the branch preserves the second
  moment, Var(f_l) = Var(x_{l-1}): q_l = 2^l q_0 (doubling) and rho_l = 1/2 at every
  depth; blocks stay far from the identity.

Exactness: by the sign symmetry of W2's rows the cross term E[x_{l-1} f_l] is exactly
0; with BN, E[q(f_l) | x_{l-1}] = mean over channels of s^2/(s^2 + eps) (s^2 the middle
BN's batch variances), 1 to ~1e-5; without BN, E[q(f_l) | x_{l-1}] = 2 mean(relu(x)^2)
exactly (dense), which is q(x) when relu keeps half of the second moment (a symmetric
x). A convolution with zero padding loses taps at the signal's ends: without BN the
second-moment profile over positions p obeys E q_l(p) = ((I + A^2)^l q_0)(p), A the
(k-tap, 1/k-weighted, zero-padded) averaging matrix, which is 2^l q_0 for an endless
signal; the architecture's closed form below uses it (the paper's plain 2^l is a
fragility alternative). With BN the ends cost at most 2/(k L) of the branch's unit
second moment (1.7% at L = 40, k = 3), which is neglected.

Set-up: dense ResNet-V2 networks (width n, Gaussian inputs standardised per feature)
and Conv1d ResNet-V2 networks on MNIST-1D signals (a 3-tap stem Conv1d(1, C) then
blocks of C channels, kernel 3, padding 1), with and without BN, D blocks, batch m, at
initialization. A ResNet-V2 branch starts with BN-ReLU of the block's input: bnfast's
layers apply W before the normalization, so the branch's first layer has W = I (a 1x1
identity convolution for the CNN): Dense(n, n, relu, BN) with W = I is exactly
relu(BN(x)). The activations are bnfast's: each branch is a bnfast Network evaluated by
the engine's forward (batch statistics) on the block's input, and the skip sum is added
here (tests check that the composition equals the engine's forward of the whole
residual network, bnfast.Residual blocks).
"""

import functools

import numpy as np

from ..nn import BatchNorm, Conv1d, Dense, Network
from .result import combine, figure
from ..executors import one_blas_thread
from .spec import Experiment, derived_seed
from .stats import t_interval

__all__ = ["EXPERIMENT", "averaging_matrix", "block_weights", "branch_layers",
           "closed_forms", "propagate", "verdict_of"]

CLAIM = ("At initialization, batch normalization downscales the residual branch "
         "relative to the skip connection by a factor on the order of the square root "
         "of the network depth, so normalized residual blocks are close to the identity: "
         "the variance of the skip path grows linearly with depth (Var(x_l) ~ l, the "
         "branch's share Var(f_l)/Var(x_l) ~ 1/l), while without normalization (He "
         "initialization) it doubles at every block (Var(x_l) ~ 2^l) and the branch "
         "keeps half of each block's output.")
SOURCE = ("De and Smith, 'Batch normalization biases residual blocks towards the "
          "identity function in deep networks', NeurIPS 2020 (arXiv:2002.10444), "
          "abstract and its variance argument for ResNet-V2 blocks at initialization, "
          "normalized and unnormalized.")
TITLE = ("BN scales residual branches down by ~sqrt(depth) at init: Var(x_l) ~ l, "
         "2^l without BN (De and Smith 2020)")

ARCHITECTURES = ("dense", "conv")
NORMS = ("bn", "none")
QUANTITIES = ("skip", "ratio")
#: The conv blocks' kernel (taps) and padding.
KERNEL = 3
#: MNIST-1D signals generated for the CNN's inputs (a fixed data set; the batch rows are
#: drawn per seed).
MNIST1D_SAMPLES = 1000

#: The rule's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"seeds": 20, "blocks": 64, "checkpoints": [1, 4, 16, 64],
               "tolerance": 1.25, "level": 0.90, "dense_width": 256,
               "conv_channels": 32, "signal_length": 40, "batch": 128, "eps": 1e-5}
SETTING = (f"ResNet-V2 networks at initialization: dense (width "
           f"{RULE_PARAMS['dense_width']}) and MNIST-1D Conv1d "
           f"({RULE_PARAMS['conv_channels']} channels), {RULE_PARAMS['blocks']} blocks")
RULE = (
    f"Version 1. {RULE_PARAMS['seeds']} seeds (independent initializations and input "
    f"batches of {RULE_PARAMS['batch']} rows), each running four networks of "
    f"{RULE_PARAMS['blocks']} ResNet-V2 blocks at initialization: dense (width "
    f"{RULE_PARAMS['dense_width']}, Gaussian inputs) and Conv1d (MNIST-1D, "
    f"{RULE_PARAMS['conv_channels']} channels, kernel 3, zero padding 1), each with BN "
    "(BN-ReLU-W1-BN-ReLU-W2) and without (ReLU-W1-ReLU-W2), He-initialised W1, W2, the "
    "BN and the no-BN network sharing weights and batch. Measured per seed, with q_l = "
    "mean(x_l^2) the skip path's second moment after block l (the paper's Var) and "
    "f_l block l's branch: (skip) the skip path's growth over blocks 1..l: with BN the "
    "mean increment (q_l - q_0)/l, closed form 1 (Var(x_l) = q_0 + l); without BN the "
    "mean per-block factor q_k/q_{k-1}, closed form 2 (Var(x_l) = 2^l q_0 in "
    "expectation), for the zero-padded Conv1d 1 + m2/m0 per block (m0 = mean_p "
    "q_{k-1}(p), m2 = mean_p (A^2 q_{k-1})(p), A the 3-tap averaging matrix with zero "
    "padding: the same argument counted at the signal's ends; 2 for an endless "
    "signal); (ratio) rho_k = mean(f_k^2)/q_k, the share of block k's output its branch "
    "carries, closed form 1/(q_0 + k) with BN (the branch downscaled by sqrt(q_0 + k)) "
    "and 1/2 without (Conv1d: m2/(m0 + m2)), its mean over the blocks k = ceil(l/2)..l "
    "over the mean of its closed form. Conditions: each (network, skip or ratio, "
    f"checkpoint l in {RULE_PARAMS['checkpoints']}), 32 in all. Per condition the "
    "per-seed ratio R = measured/closed form and the two-sided "
    f"{RULE_PARAMS['level']:.0%} Student-t interval over seeds of the mean of R (the "
    "paper's Var is an expectation over initializations): supported if the interval "
    f"lies inside [1/{RULE_PARAMS['tolerance']}, {RULE_PARAMS['tolerance']}] (the "
    "closed form holds to a factor 1.25 in second moment, 1.12 in scale: far tighter "
    "than what separates l from sqrt(l) or 2^l); refuted if it lies entirely outside; "
    "undecided otherwise. Verdict: result.combine over the conditions (supported if all "
    "support, refuted if all refute, mixed if some support and some refute, else "
    "underpowered), a refutation only 'in' this reduced setting. Fragility alternatives: "
    "the cumulative q_l / closed-form q_l in place of the per-block growth (a product "
    "of l random factors without BN: heavy-tailed); the ratio at block l alone in place "
    "of blocks l/2..l; the geometric mean of R (the "
    "typical network) with its interval; tolerance 1.1; tolerance 1.5; 95% intervals; "
    "the paper's plain 2 and 1/2 for the zero-padded Conv1d without BN.")


def settings(quick):
    """The set-up: widths, blocks, checkpoints, seeds, batch."""
    if quick:
        return {"seeds": 4, "blocks": 16, "checkpoints": [1, 4, 16],
                "dense_width": 64, "conv_channels": 8,
                "signal_length": RULE_PARAMS["signal_length"], "batch": 64,
                "tolerance": RULE_PARAMS["tolerance"], "level": RULE_PARAMS["level"],
                "eps": RULE_PARAMS["eps"],
                "reduced": [
                    "quick: 4 seeds, 16 blocks (checkpoints 1, 4, 16), width 64, 8 "
                    "channels, batch 64 (the full run: 20 seeds, 64 blocks, width 256, "
                    "32 channels, batch 128)",
                    *_REDUCED]}
    return {**{k: RULE_PARAMS[k] for k in ("seeds", "blocks", "checkpoints",
                                           "dense_width", "conv_channels",
                                           "signal_length", "batch", "tolerance",
                                           "level", "eps")},
            "reduced": list(_REDUCED)}


_REDUCED = [
    "small networks: dense ResNet-V2 of width 256 on Gaussian inputs and Conv1d "
    "ResNet-V2 of 32 channels on MNIST-1D signals (length 40), 64 blocks, instead of "
    "the paper's Wide-ResNets and ResNet-50-V2 on CIFAR-10 and ImageNet (a CPU "
    "budget); the claim and its closed forms are at initialization and do not depend "
    "on the data set",
    "only the initialization claim is checked; the paper's training experiments "
    "(SkipInit, learning rates, batch sizes) are not reproduced",
    "the branch's leading BN-ReLU is realised as a layer with identity weights (bnfast "
    "applies W before the normalization); it is exactly BN-ReLU of the block's input",
]


def tasks(settings, seed):
    """One task per (seed, architecture, norm); the BN and the no-BN network of a seed
    share the input batch and the weights (derived from (seed, replicate, architecture))."""
    out = []
    for r in range(settings["seeds"]):
        for a, architecture in enumerate(ARCHITECTURES):
            for norm in NORMS:
                out.append({"replicate": r, "architecture": architecture, "norm": norm,
                            "width": settings["dense_width" if architecture == "dense"
                                              else "conv_channels"],
                            "blocks": settings["blocks"], "batch": settings["batch"],
                            "signal_length": settings["signal_length"],
                            "eps": settings["eps"],
                            "seed": derived_seed(seed, r, a)})
    return out


def branch_layers(architecture, width, norm, eps=1e-5):
    """The ResNet-V2 branch as bnfast layers: [identity-weight layer + BN + ReLU,
    W1 + BN + ReLU, W2] (no BN in either layer for norm "none"), no biases.
    dense: Dense(width, width); conv: Conv1d(width, width, 1) then two
    Conv1d(width, width, 3, padding=1)."""
    def bn():
        return {"batch_norm": BatchNorm(eps=eps)} if norm == "bn" else {}
    if architecture == "dense":
        return [Dense(width, width, "relu", bias=False, **bn()),
                Dense(width, width, "relu", bias=False, **bn()),
                Dense(width, width, bias=False)]
    return [Conv1d(width, width, 1, activation="relu", bias=False, **bn()),
            Conv1d(width, width, KERNEL, padding=KERNEL // 2, activation="relu",
                   bias=False, **bn()),
            Conv1d(width, width, KERNEL, padding=KERNEL // 2, bias=False)]


def block_weights(architecture, width, rng):
    """One block's weights [W0 = I, W1, W2], W1 and W2 ~ N(0, 2/fan_in) (He), fan_in =
    width (dense) or 3 width (conv); shapes (width, width) or (width, width, taps)."""
    if architecture == "dense":
        shape, fan_in, eye = (width, width), width, np.eye(width)
    else:
        shape, fan_in = (width, width, KERNEL), width * KERNEL
        eye = np.eye(width)[:, :, None]
    scale = np.sqrt(2.0 / fan_in)
    return [eye, scale * rng.standard_normal(shape), scale * rng.standard_normal(shape)]


def _set_weights(base, layout, weights):
    """``base`` (the template's params: gamma 1, beta 0) with the W's replaced."""
    params = base.copy()
    for entry, W in zip(layout, weights):
        where, shape = entry["W"]
        params[where] = np.asarray(W, dtype=np.float64).reshape(shape).ravel()
    return params


def averaging_matrix(length, taps=KERNEL):
    """A (length, length): (A q)(p) = (1/taps) sum of q over the taps around p inside
    the signal (zero padding), the second moment a He-initialised k-tap convolution
    passes on, position by position."""
    A = np.zeros((length, length))
    half = taps // 2
    for p in range(length):
        A[p, max(0, p - half):min(length, p + half + 1)] = 1.0 / taps
    return A


def _profile(x):
    """Second moment per position, (L,), of x (m, C, L): mean over samples and channels."""
    return np.mean(x * x, axis=(0, 1))


def _channel_stats(x):
    """(mean over channels of the batch variance, mean over channels of the squared
    batch mean): the signal-propagation plot's two curves; x (m, n) or (m, C, L), a
    channel's statistics over samples (and positions)."""
    flat = x.reshape(len(x), x.shape[1], -1).transpose(1, 0, 2).reshape(x.shape[1], -1)
    return float(flat.var(axis=1).mean()), float((flat.mean(axis=1) ** 2).mean())


@functools.lru_cache(maxsize=2)
def _mnist1d_signals(samples):
    from ..datasets import mnist1d
    data = mnist1d(samples=samples, seed=42, split=0.0)
    X = np.array(data.X_train)
    X.flags.writeable = False
    return X


def _inputs(architecture, width, batch, signal_length, rng):
    """The first block's input x_0 and the stem that made it (None for dense):
    dense: Gaussian (batch, width) standardised per feature; conv: batch rows of
    MNIST-1D (batch, 1, L) through Conv1d(1, width, 3, padding 1), weights N(0, 1/3)."""
    if architecture == "dense":
        X = rng.standard_normal((batch, width))
        return (X - X.mean(axis=0)) / X.std(axis=0)
    signals = _mnist1d_signals(MNIST1D_SAMPLES)
    if signals.shape[-1] != signal_length:
        raise ValueError(f"MNIST-1D signals have length {signals.shape[-1]}, the set-up "
                         f"says {signal_length}")
    rows = rng.choice(len(signals), size=batch, replace=False)
    stem = Network([Conv1d(1, width, KERNEL, padding=KERNEL // 2, bias=False)])
    stem.params = rng.standard_normal(stem.num_params) / np.sqrt(KERNEL)
    return stem.forward(signals[rows])


def propagate(architecture, norm, width, blocks, x0, rng, eps=1e-5):
    """Runs ``blocks`` ResNet-V2 blocks from x0 (m, width) or (m, width, L), each branch
    by the engine's forward (batch statistics), weights from ``rng`` (block_weights,
    drawn in the same order whatever the norm). Returns dict of float lists:
    q (blocks + 1,) mean(x_l^2); b (blocks,) mean(f_l^2) for blocks l = 1..D;
    qplus (blocks,) mean(relu(x_{l-1})^2); variance, squared_mean (blocks + 1,) the
    channel statistics of x_l; profiles and plus_profiles (blocks, L) the second
    moment per position of x_{l-1} and of relu(x_{l-1}) (conv only; else absent); and
    "output" the last x (an array)."""
    template = Network(branch_layers(architecture, width, norm, eps))
    base, layout = template.params, template.param_layout()
    x = np.asarray(x0, dtype=np.float64)
    out = {"q": [float(np.mean(x * x))], "b": [], "qplus": [], "variance": [],
           "squared_mean": []}
    if architecture == "conv":
        out["profiles"], out["plus_profiles"] = [], []
    variance, squared = _channel_stats(x)
    out["variance"].append(variance)
    out["squared_mean"].append(squared)
    for _ in range(blocks):
        template.params = _set_weights(base, layout, block_weights(architecture, width,
                                                                   rng))
        f = template.forward(x)
        out["qplus"].append(float(np.mean(np.maximum(x, 0.0) ** 2)))
        if architecture == "conv":
            out["profiles"].append(_profile(x).tolist())
            out["plus_profiles"].append(_profile(np.maximum(x, 0.0)).tolist())
        x = x + f
        out["b"].append(float(np.mean(f * f)))
        out["q"].append(float(np.mean(x * x)))
        variance, squared = _channel_stats(x)
        out["variance"].append(variance)
        out["squared_mean"].append(squared)
    out["output"] = x
    return out


def closed_forms(architecture, norm, q0, blocks, profile0=None, profiles=None,
                 padding_aware=True):
    """The closed forms (module docstring) for blocks l = 1..D, each (D,):
    "growth": block l's growth of the skip path's second moment, given x_{l-1}
        (BN: the increment q_l - q_{l-1} = 1; no BN: the factor q_l/q_{l-1} = 2, for
        the zero-padded conv 1 + m2/m0 with m0 = mean_p q_{l-1}(p), m2 = mean_p
        (A^2 q_{l-1})(p) from ``profiles`` (D, L), the measured profile of x_{l-1});
    "skip": q_l itself (BN: q_0 + l; no BN: 2^l q_0, for the conv mean_p((I +
        A^2)^l profile0)(p));
    "ratio": rho_l = Var(f_l)/Var(x_l) (BN: 1/(q_0 + l); no BN: 1/2, for the conv
        m2/(m0 + m2)).
    padding_aware False: the paper's plain forms for the conv too."""
    l = np.arange(1, blocks + 1, dtype=np.float64)
    if norm == "bn":
        return {"growth": np.ones(blocks), "skip": q0 + l, "ratio": 1.0 / (q0 + l)}
    if architecture == "dense" or not padding_aware:
        return {"growth": np.full(blocks, 2.0), "skip": q0 * 2.0 ** l,
                "ratio": np.full(blocks, 0.5)}
    profile = np.asarray(profile0, dtype=np.float64)
    A = averaging_matrix(len(profile))
    step = np.eye(len(profile)) + A @ A
    skip = []
    for _ in range(blocks):
        profile = step @ profile
        skip.append(profile.mean())
    previous = np.asarray(profiles, dtype=np.float64)             # (D, L)
    m0 = previous.mean(axis=1)
    m2 = (previous @ (A @ A).T).mean(axis=1)
    return {"growth": 1.0 + m2 / m0, "skip": np.array(skip), "ratio": m2 / (m0 + m2)}


def run_task(task):
    """One network of one seed: the per-block second moments, the closed forms (the
    architecture's and the paper's plain ones) and the exact conditional check of the
    branch's second moment without BN (2 mean(A^2 relu(x)^2 profile), dense: A = I)."""
    with one_blas_thread():
        return _run_task(task)


def _run_task(task):
    rng = np.random.default_rng(task["seed"])
    architecture, norm, width = task["architecture"], task["norm"], task["width"]
    blocks = task["blocks"]
    x0 = _inputs(architecture, width, task["batch"], task["signal_length"], rng)
    weights_rng = np.random.default_rng(derived_seed(task["seed"], 1))
    run = propagate(architecture, norm, width, blocks, x0, weights_rng, task["eps"])
    q0 = run["q"][0]
    profile0 = _profile(x0) if architecture == "conv" else None
    profiles = run.get("profiles")
    exact = closed_forms(architecture, norm, q0, blocks, profile0, profiles)
    plain = closed_forms(architecture, norm, q0, blocks, profile0, profiles,
                         padding_aware=False)
    q = np.array(run["q"])
    b = np.array(run["b"])
    ratio = b / q[1:]
    growth = q[1:] - q[:-1] if norm == "bn" else q[1:] / q[:-1]
    out = {"replicate": task["replicate"], "architecture": architecture, "norm": norm,
           "q": q.tolist(), "ratio": ratio.tolist(), "growth": growth.tolist(),
           "b": b.tolist(),
           "variance": run["variance"], "squared_mean": run["squared_mean"],
           "closed_form": {k: v.tolist() for k, v in exact.items()},
           "plain_closed_form": {k: v.tolist() for k, v in plain.items()}}
    if norm == "none":
        # E[q(f_l) | x_{l-1}] = 2 mean_p (A^2 relu(x_{l-1})^2 profile)(p) exactly
        # (dense: A = I), whatever the symmetry of x
        if architecture == "dense":
            expected = 2.0 * np.array(run["qplus"])
        else:
            A = averaging_matrix(task["signal_length"])
            expected = 2.0 * (np.array(run["plus_profiles"]) @ (A @ A).T).mean(axis=1)
        out["conditional_branch"] = (b / expected).tolist()
    else:
        # E[q(f_l) | x_{l-1}] = mean over channels of s^2/(s^2 + eps) ~ 1 (dense)
        out["conditional_branch"] = b.tolist()
    return out


def _network_name(architecture, norm):
    return f"{architecture} {'BN' if norm == 'bn' else 'no BN'}"


def _group(results):
    """{(architecture, norm): [task results in seed order]}."""
    groups = {}
    for r in results:
        groups.setdefault((r["architecture"], r["norm"]), []).append(r)
    for rows in groups.values():
        rows.sort(key=lambda r: r["replicate"])
    return groups


def per_seed_ratios(rows, quantity, depth, plain=False, cumulative=False,
                    single_block=False):
    """R per seed, measured / closed form, at checkpoint ``depth`` (block l = depth):
    "skip": the mean over blocks 1..l of the skip path's growth (BN: q_k - q_{k-1};
        no BN: q_k/q_{k-1}) over the mean of its closed form, i.e. (q_l - q_0)/l with
        BN and the mean per-block factor / 2 without; cumulative: q_l / closed form
        q_l instead (heavy-tailed without BN: a product of l random factors);
    "ratio": the mean of rho_k over blocks k = ceil(l/2)..l over the mean of its
        closed form; single_block: rho_l / its closed form.
    plain: the paper's plain closed forms (no zero-padding correction)."""
    key = "plain_closed_form" if plain else "closed_form"
    if quantity == "ratio":
        first = depth - 1 if single_block else (depth + 1) // 2 - 1
        return [float(np.mean(r["ratio"][first:depth])
                      / np.mean(r[key]["ratio"][first:depth])) for r in rows]
    if cumulative:
        return [r["q"][depth] / r[key]["skip"][depth - 1] for r in rows]
    return [float(np.mean(r["growth"][:depth]) / np.mean(r[key]["growth"][:depth]))
            for r in rows]


def outcome(values, tolerance, level, geometric=False):
    """The rule on one condition: the two-sided ``level`` t interval of the mean of R
    (geometric: of log R, against +-log tolerance) inside [1/tolerance, tolerance]:
    "supported"; entirely outside: "refuted"; else "undecided". Returns (outcome,
    {"mean", "low", "high"} on R's scale)."""
    values = np.asarray(values, dtype=np.float64)
    if geometric:
        if np.any(values <= 0.0) or not np.all(np.isfinite(values)):
            return "undecided", {"mean": None, "low": None, "high": None}
        values = np.log(values)
    ci = t_interval(values.tolist(), level)
    if ci["low"] is None:
        return "undecided", {"mean": ci["mean"], "low": None, "high": None}
    back = np.exp if geometric else (lambda v: v)
    mean, low, high = (float(back(ci[k])) for k in ("mean", "low", "high"))
    if 1.0 / tolerance <= low and high <= tolerance:
        label = "supported"
    elif high < 1.0 / tolerance or low > tolerance:
        label = "refuted"
    else:
        label = "undecided"
    return label, {"mean": mean, "low": low, "high": high}


def verdict_of(results, checkpoints, tolerance, level, geometric=False, plain=False,
               cumulative=False, single_block=False):
    """(Verdict, rows): every (network, quantity, checkpoint) condition judged by
    ``outcome``; result.combine over them."""
    groups = _group(results)
    conditions, rows = {}, []
    for architecture in ARCHITECTURES:
        for norm in NORMS:
            group = groups.get((architecture, norm))
            if not group:
                continue
            for quantity in QUANTITIES:
                for depth in checkpoints:
                    values = per_seed_ratios(group, quantity, depth,
                                             plain and architecture == "conv",
                                             cumulative, single_block)
                    label, ci = outcome(values, tolerance, level, geometric)
                    name = f"{_network_name(architecture, norm)} {quantity} l={depth}"
                    conditions[name] = label
                    rows.append({"condition": name, "network": _network_name(
                        architecture, norm), "quantity": quantity, "depth": depth,
                        "outcome": label, **ci, "seeds": len(values)})
    verdict = combine(conditions, SETTING, reduced=True, decide=(
        "more seeds (a narrower interval of the mean ratio) at the undecided depths"))
    return verdict, rows


def _quantiles(matrix):
    matrix = np.asarray(matrix, dtype=np.float64)
    return {"mean": matrix.mean(axis=0).tolist(),
            "p10": np.quantile(matrix, 0.1, axis=0).tolist(),
            "p90": np.quantile(matrix, 0.9, axis=0).tolist()}


def _curves(rows):
    """The figure's curves of one network, over seeds: q_l, rho_l, their closed forms,
    the channel variance and squared channel mean."""
    return {"q": _quantiles([r["q"] for r in rows]),
            "ratio": _quantiles([r["ratio"] for r in rows]),
            "closed_skip": np.mean([r["closed_form"]["skip"] for r in rows],
                                   axis=0).tolist(),
            "closed_ratio": np.mean([r["closed_form"]["ratio"] for r in rows],
                                    axis=0).tolist(),
            "plain_skip": np.mean([r["plain_closed_form"]["skip"] for r in rows],
                                  axis=0).tolist(),
            "plain_ratio": np.mean([r["plain_closed_form"]["ratio"] for r in rows],
                                   axis=0).tolist(),
            "variance": np.mean([r["variance"] for r in rows], axis=0).tolist(),
            "squared_mean": np.mean([r["squared_mean"] for r in rows], axis=0).tolist()}


def _growth(rows, norm):
    """BN: the mean increment q_l - q_{l-1} over seeds and blocks, and least-squares
    slopes over l = 0..D of the mean q_l, channel variance and squared channel mean
    (closed form: 1 for q); no BN: the mean factor q_l/q_{l-1} over seeds and blocks
    (closed form 2), and the typical one, the mean over seeds of 2^((log2 q_D - log2
    q_0)/D), with the same for the channel variance."""
    q = np.array([r["q"] for r in rows])
    l = np.arange(q.shape[1], dtype=np.float64)
    if norm == "bn":
        def slope(values):
            return float(np.polyfit(l, np.mean(values, axis=0), 1)[0])
        return {"mean_increment": float(np.mean([r["growth"] for r in rows])),
                "q_slope": slope(q),
                "variance_slope": slope([r["variance"] for r in rows]),
                "squared_mean_slope": slope([r["squared_mean"] for r in rows])}
    rates = (np.log2(q[:, -1]) - np.log2(q[:, 0])) / (q.shape[1] - 1)
    return {"mean_block_factor": float(np.mean([r["growth"] for r in rows])),
            "growth_factor": float(np.mean(2.0 ** rates)),
            "variance_growth_factor": float(np.mean(2.0 ** (
                (np.log2([r["variance"][-1] for r in rows])
                 - np.log2([r["variance"][0] for r in rows])) / (q.shape[1] - 1))))}


#: The fragility alternatives: name -> keyword arguments of verdict_of.
ALTERNATIVES = {
    "cumulative q_l / closed form in place of the per-block growth": {"cumulative": True},
    "the ratio at block l alone": {"single_block": True},
    "geometric mean of R": {"geometric": True},
    "tolerance 1.1": {"tolerance": 1.1},
    "tolerance 1.5": {"tolerance": 1.5},
    "95% intervals": {"level": 0.95},
    "the paper's plain 2 and 1/2 for the zero-padded conv": {"plain": True},
}


def conclude(settings, results):
    """Verdict by RULE; the curves, the conditions' table, the growth laws and the
    conditional check of the branch's second moment."""
    checkpoints = settings["checkpoints"]
    tolerance, level = settings["tolerance"], settings["level"]
    verdict, rows = verdict_of(results, checkpoints, tolerance, level)
    alternatives = {}
    for name, change in ALTERNATIVES.items():
        kwargs = {"tolerance": tolerance, "level": level, **change}
        alternatives[name] = verdict_of(results, checkpoints, **kwargs)[0].label
    groups = _group(results)
    networks = {}
    for (architecture, norm), group in groups.items():
        check = np.array([r["conditional_branch"] for r in group])
        networks[_network_name(architecture, norm)] = {
            "architecture": architecture, "norm": norm, "seeds": len(group),
            "curves": _curves(group), "growth": _growth(group, norm),
            "q0": float(np.mean([r["q"][0] for r in group])),
            ("branch_second_moment" if norm == "bn" else
             "branch_over_conditional_expectation"): float(check.mean())}
    counts = {k: sum(r["outcome"] == k for r in rows)
              for k in ("supported", "refuted", "undecided")}
    deepest = max(checkpoints)
    inputs = {"conditions": len(rows), **counts,
              "tolerance": tolerance, "level": level, "deepest": deepest,
              "R_at_deepest": {r["condition"]: [r["mean"], r["low"], r["high"]]
                               for r in rows if r["depth"] == deepest}}
    return verdict, {"conditions": rows, "networks": networks,
                     "alternatives": alternatives, "verdict_inputs": inputs}


def summary(measurements):
    """The lines of the terminal report."""
    inputs = measurements["verdict_inputs"]
    lines = [f"{inputs['supported']} of {inputs['conditions']} conditions within a "
             f"factor {inputs['tolerance']:g} of the closed form ({inputs['level']:.0%} "
             f"intervals of the mean ratio over seeds), {inputs['refuted']} outside, "
             f"{inputs['undecided']} undecided"]
    for name, net in measurements["networks"].items():
        growth = net["growth"]
        if net["norm"] == "bn":
            law = (f"Var(x_l) grows by {figure(growth['mean_increment'])} per block "
                   f"(closed form 1; fitted slope {figure(growth['q_slope'])}; channel "
                   f"variance {figure(growth['variance_slope'])}, squared "
                   f"channel mean {figure(growth['squared_mean_slope'])}); branch second "
                   f"moment {figure(net['branch_second_moment'])}")
        else:
            law = (f"Var(x_l) grows by a factor {figure(growth['mean_block_factor'])} "
                   f"per block on average (closed form 2; the typical network "
                   f"{figure(growth['growth_factor'])}); branch / its conditional expectation "
                   f"{figure(net['branch_over_conditional_expectation'])}")
        lines.append(f"{name}: q_0 = {figure(net['q0'])}; {law}")
        for row in measurements["conditions"]:
            if row["network"] == name:
                ci = ("n/a" if row["low"] is None else
                      f"[{figure(row['low'])}, {figure(row['high'])}]")
                lines.append(f"  {row['quantity']:<5} l={row['depth']:<3} measured/closed "
                             f"form {figure(row['mean'])} {ci}: {row['outcome']}")
    return lines


def headline(inputs):
    """The verdict's key figures: the conditions within tolerance, and the deepest
    checkpoint's mean ratios of the skip path's second moment."""
    deepest = inputs["R_at_deepest"]
    parts = [f"{name.replace(' skip l=' + str(inputs['deepest']), '')} "
             f"{figure(values[0])}" for name, values in deepest.items()
             if " skip " in name]
    return (f"{inputs['supported']}/{inputs['conditions']} conditions within "
            f"{inputs['tolerance']:g}x of the closed forms; skip growth over blocks "
            f"1..{inputs['deepest']} / closed form: " + ", ".join(parts))


EXPERIMENT = Experiment(name="residual-identity", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=1, rule_params=RULE_PARAMS, settings=settings,
                        tasks=tasks, run_task=run_task, conclude=conclude,
                        summary=summary, headline=headline, order=20, title=TITLE)
