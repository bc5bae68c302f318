"""Gradient explosion at initialization in deep BN networks (Yang, Pennington, Rao,
Sohl-Dickstein and Schoenholz, "A Mean Field Theory of Batch Normalization", ICLR 2019,
arXiv:1902.08129, Theorems 8 and 9 and section "Gradient explosion"; the Wikipedia
"Batch normalization" article's sentence about it is the seed).

The claim: in a deep, wide BN network at random initialization (gamma = 1, beta = 0,
eps = 0, batch of B samples), going down the network the SQUARED gradient norm of a
layer's weights grows by a factor lambda(B) per layer, so that a deep BN network without
skip connections is untrainable; residual connections relieve it. docs/experiments/explosion.md
section 5 has the closed forms; the mean-field statement is a limit of infinite width at
fixed B.

    linear:   lambda(B) = (B - 2) / (B - 3)
    ReLU:     lambda(B) = (J'(c) + (B - 1) J(1)) / ((B - 3)(J(1) - J(c))) - 1/(B - 3)
              J(c) = (sqrt(1 - c^2) + (pi - arccos c) c) / pi,
              J'(c) = (pi - arccos c) / pi,  c = -1/(B - 1)
    tanh:     no closed form here (predicted None)

Set-up: ``depth`` layers x -> phi(BN(W x)) of width N (no bias: BN's centring removes
it; gamma, beta constants 1 and 0; eps = 0, the exact transform, which the engine
allows), W ~ N(0, 1/N) (the engine's default draw; Yang et al. use N(0, sigma_w^2/N), and
at eps = 0 BN makes the network invariant to sigma_w), then a linear read-out Dense(N, N)
without BN and the squared loss against Gaussian targets; inputs Gaussian (B, N). The
measurement: per BN layer l, ||dL/dW_l||_F^2 from one backward pass; the growth rate is
exp(-slope) of the least-squares line through log ||dL/dW_l||^2 against l over the layers
at least ``skip`` away from both ends (the ends carry the input's and the loss's
transients; the rate far from the top does not depend on the loss). The residual variant
wraps every layer in bnfast.Residual (x -> x + phi(BN(W x))), same weights.
"""

import math

import numpy as np

from .._validate import choice, integer
from ..nn import BatchNorm, Dense, Network, Residual
from .result import combine
from .spec import Experiment, derived_seed

__all__ = ["ACTIVATIONS", "EXPERIMENT", "LAMBDA_RELU_LIMIT", "bn_network", "fit_rate",
           "lambda_linear", "lambda_relu", "layer_squared_gradient_norms",
           "predicted_rate"]

#: The activations of the experiment and the engine's name for each.
ACTIVATIONS = {"linear": "identity", "relu": "relu", "tanh": "tanh"}
#: lim_{B -> inf} lambda_relu(B) = pi / (pi - 1).
LAMBDA_RELU_LIMIT = math.pi / (math.pi - 1.0)
#: The plain nets whose measured rate is at least this explode (1.3^20 ~ 190x over a
#: 20-layer fit), so that there is an explosion for residual connections to relieve.
#: Chosen away from every predicted lambda(B) of the grids (B = 4, 8, 16, 64, 256), so
#: that which nets are judged does not hang on seed noise: linear 2, 1.2, 1.077, 1.016,
#: 1.004 and ReLU 3.08, 1.79, 1.59, 1.49, 1.47 (all >= pi/(pi-1) = 1.467); 1.3 lies
#: between linear B = 8 (1.2 exactly, which the former cut-off 1.2 split in two) and the
#: smallest ReLU value, >= 8% from each. tanh has no closed form; its measured rates in
#: the full run (1.35 at B = 8, 1.25 at B = 16) are each about 4% (several SE) away.
EXPLODING_RATE = 1.3
#: How many standard errors across seeds the rule allows.
SIGMAS = 3.0
#: A finite-width correction c(N) ~ N^-p with p >= 1/3 is at most
#: (c(N/4) - c(N)) / (4^(1/3) - 1) = 1.70 x the measured drift between widths N/4 and N.
#: p = 1/3 is the slowest decay argued for: at B = 4, 1/sigma^2 of a BN unit (sigma^2 ~
#: chi^2_3 / 3) has infinite variance, and a mean over N such units converges like N^-1/3.
DRIFT_FACTOR = 1.0 / (4.0 ** (1.0 / 3.0) - 1.0)
#: Version 2's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {"replicates": 10, "width": 512, "drift_width": 128, "depth": 30, "skip": 5,
               "batch_sizes": [4, 8, 16, 64, 256], "residual_batch_sizes": [4, 8, 16, 64],
               "verdict_max_batch_ratio": 1 / 8, "sigmas": SIGMAS,
               "drift_factor": DRIFT_FACTOR, "exploding_rate": EXPLODING_RATE}
#: The setting of the verdict: finite-width random BN networks (the claim is a theorem
#: of the infinite-width limit).
SETTING = "random BN networks of width 512, depth 30 at initialization"
#: The alternative summaries of the fragility line.
ALTERNATIVES = {"median instead of mean log-rate over inits": "median",
                "no finite-width allowance (3 SE only)": "no_drift"}


def _batch_size(B):
    """B as an int >= 4 (the closed forms have a pole at B = 3)."""
    return integer(B, "the batch size B of the closed forms", 4)


def lambda_linear(B):
    """Yang et al.'s per-layer growth of the squared weight-gradient norm of a deep
    linear BN network, (B - 2)/(B - 3), for batch size B >= 4 (int)."""
    B = _batch_size(B)
    return (B - 2) / (B - 3)


def lambda_relu(B):
    """Yang et al.'s per-layer growth for ReLU (Theorem 8 with alpha = 1), B >= 4:
    (J'(c) + (B-1) J(1)) / ((B-3)(J(1) - J(c))) - 1/(B-3) at c = -1/(B-1), with the
    normalized arc-cosine kernel J(c) = (sqrt(1-c^2) + (pi - arccos c) c)/pi (J(1) = 1)
    and J'(c) = (pi - arccos c)/pi. Tends to pi/(pi - 1) as B -> inf."""
    B = _batch_size(B)
    c = -1.0 / (B - 1)
    J_c = (math.sqrt(1.0 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    dJ_c = (math.pi - math.acos(c)) / math.pi
    return (dJ_c + (B - 1)) / ((B - 3) * (1.0 - J_c)) - 1.0 / (B - 3)


def predicted_rate(activation, B):
    """lambda(B) for "linear" or "relu"; None for "tanh" (no closed form here)."""
    choice(activation, "activation", ACTIVATIONS)
    return {"linear": lambda_linear, "relu": lambda_relu}.get(
        activation, lambda _: None)(B)


def bn_network(width, depth, activation, residual=False, seed=0):
    """``depth`` BN layers x -> phi(BN(W x)) of width ``width`` (no bias, gamma 1 and
    beta 0 constant, eps 0), each wrapped in a Residual block when ``residual``, then
    a linear read-out Dense(width, width) without BN; W ~ N(0, 1/width) from ``seed``
    (the engine's default draw). The residual and plain nets of one seed have the same
    weights (the blocks add no parameters)."""
    def layer():
        return Dense(width, width, ACTIVATIONS[activation], bias=False,
                     batch_norm=BatchNorm(gamma=1.0, beta=0.0, trainable=False, eps=0.0))
    body = [Residual([layer()]) if residual else layer() for _ in range(depth)]
    return Network(body + [Dense(width, width, bias=False)], loss="sum", seed=seed)


def layer_squared_gradient_norms(net, X, Y):
    """||dL/dW_l||_F^2 for every Dense layer but the read-out, float64 (depth,), from
    one backward pass on the batch X (B, width), targets Y (B, width)."""
    grad = net.gradient(X, Y)
    return np.array([float(np.dot(grad[sl], grad[sl])) for sl in net.param_slices[:-1]])


def fit_rate(log_squared_norms, skip):
    """The per-layer growth rate going DOWN: exp(-slope) of the least-squares line
    through log ||dL/dW_l||^2 (depth,) against l = 0..depth-1, fitted on
    l = skip .. depth-1-skip (at least 3 layers)."""
    values = np.asarray(log_squared_norms, dtype=np.float64)
    layers = np.arange(len(values))[skip:len(values) - skip]
    if len(layers) < 3:
        raise ValueError(f"fit_rate needs >= 3 layers after skipping {skip} at each end, "
                         f"got {len(layers)}")
    slope = np.polyfit(layers, values[layers], 1)[0]
    return float(np.exp(-slope))


def settings(quick):
    """The set-up (module docstring); quick and full differ only in these numbers."""
    if quick:
        s = dict(width=256, drift_width=64, depth=20, skip=4, replicates=4,
                 batch_sizes=[4, 8, 16], residual_batch_sizes=[4, 8, 16])
        reduced = ["quick: width 256 (drift width 64), depth 20, 4 random inits, batch "
                   "sizes 4, 8, 16 only, to stay within seconds"]
    else:
        s = {k: RULE_PARAMS[k] for k in ("width", "drift_width", "depth", "skip",
                                          "replicates", "batch_sizes",
                                          "residual_batch_sizes")}
        reduced = ["residual nets at B <= 64 only (B = 256 costs most and the plain "
                   "nets explode most at small B)"]
    reduced += [
        f"finite width {s['width']}: the closed forms are the limit width -> inf at "
        "fixed B; the finite-width correction grows with B/width, so the verdict uses "
        f"B <= width/8 only (larger B reported, not judged); the allowance for the "
        f"remaining correction is measured by repeating at width {s['drift_width']}",
        f"depth {s['depth']} (the paper's figures go deeper) on a CPU budget; the rate "
        f"is fitted on the layers {s['skip']} or more away from both ends",
        "one Gaussian batch per random init (Yang et al. average over inputs too)",
        "a linear read-out and the squared loss against Gaussian targets stand in for "
        "the loss; the rate far from the top does not depend on it",
    ]
    return {**s, "activations": list(ACTIVATIONS), "architectures": ["plain", "residual"],
            "verdict_max_batch_ratio": RULE_PARAMS["verdict_max_batch_ratio"],
            "sigmas": RULE_PARAMS["sigmas"], "drift_factor": RULE_PARAMS["drift_factor"],
            "exploding_rate": RULE_PARAMS["exploding_rate"],
            "eps": 0.0, "reduced": reduced}


def tasks(settings, seed):
    """One task per (init r, width, architecture, activation), covering its batch sizes
    with one network (built once). The weights and data of replicate r are shared by
    all activations, batch sizes (the first B rows of one Gaussian batch) and both
    architectures (paired); residual nets run at ``residual_batch_sizes``; the
    width-``drift_width`` runs are plain nets only."""
    out = []
    for r in range(settings["replicates"]):
        for width, archs in ((settings["width"], settings["architectures"]),
                             (settings["drift_width"], ["plain"])):
            init_seed = derived_seed(seed, r, width)
            data_seed = derived_seed(seed, r, width, 1)
            for arch in archs:
                sizes = settings["residual_batch_sizes" if arch == "residual"
                                 else "batch_sizes"]
                for activation in settings["activations"]:
                    out.append(dict(replicate=r, width=width, architecture=arch,
                                    activation=activation, batch_sizes=list(sizes),
                                    depth=settings["depth"], skip=settings["skip"],
                                    max_batch=max(settings["batch_sizes"]),
                                    init_seed=init_seed, data_seed=data_seed))
    return out


def run_task(task):
    """For each B of task["batch_sizes"]: the per-layer log ||dL/dW_l||^2 and the fitted
    rate of one network on the first B rows of a Gaussian batch (max_batch, width) and
    of Gaussian targets. Returns {"batches": [{"batch_size", "log_squared_norms" (depth,),
    "rate"}, ...]}."""
    width = task["width"]
    rng = np.random.default_rng(task["data_seed"])
    X = rng.standard_normal((task["max_batch"], width))
    Y = rng.standard_normal((task["max_batch"], width))
    net = bn_network(width, task["depth"], task["activation"],
                     task["architecture"] == "residual", task["init_seed"])
    batches = []
    for B in task["batch_sizes"]:
        log_sq = np.log(layer_squared_gradient_norms(net, X[:B], Y[:B]))
        batches.append({"batch_size": int(B), "log_squared_norms": log_sq.tolist(),
                        "rate": fit_rate(log_sq, task["skip"])})
    return {"batches": batches}


def _stats(logs):
    """Mean, sample sd and standard error of a list of log-rates."""
    logs = np.asarray(logs, dtype=np.float64)
    sd = float(np.std(logs, ddof=1)) if len(logs) > 1 else 0.0
    return float(np.mean(logs)), sd, sd / math.sqrt(len(logs))


def verdict_of(rate_cases, residual_cases):
    """Version 2's mapping: a rate case that agrees with lambda(B) supports; one that
    does not is undecided (one finite width cannot tell a wrong closed form from a
    finite-width correction larger than allowed) unless more than half of the rate
    cases disagree (then they refute); a residual case relieved supports, one not
    relieved is undecided unless more than half are not (then they refute);
    result.combine over all cases."""
    conditions = {}
    rate_fail = sum(not c["agrees"] for c in rate_cases)
    res_fail = sum(not c["relieved"] for c in residual_cases)
    for c in rate_cases:
        conditions[f"rate {c['activation']} B={c['batch_size']}"] = (
            "supported" if c["agrees"] else
            "refuted" if rate_fail > len(rate_cases) / 2 else "undecided")
    for c in residual_cases:
        conditions[f"residual {c['activation']} B={c['batch_size']}"] = (
            "supported" if c["relieved"] else
            "refuted" if res_fail > len(residual_cases) / 2 else "undecided")
    if not rate_cases or not residual_cases:
        conditions["judged cases"] = "undecided"
    return combine(conditions, SETTING, reduced=True, decide=(
        "the rates extrapolated in width (512 to 4096 or more, 20+ inits at B = 4): "
        "the finite-width correction decays with width"))


def conclude(settings, results):
    """The rule (RULE) on the fitted rates; measurements as documented in the docs."""
    grouped = {}
    for task, res in zip(tasks(settings, settings.get("seed", 0)), results):
        for batch in res["batches"]:
            key = (task["architecture"], task["width"], task["activation"],
                   batch["batch_size"])
            grouped.setdefault(key, []).append(batch)
    width, drift_width = settings["width"], settings["drift_width"]
    sigmas = settings["sigmas"]

    def logs(arch, w, act, B):
        return [math.log(r["rate"]) for r in grouped[(arch, w, act, B)]]

    rates, cases, residual_cases, profiles = [], [], [], []
    for act in settings["activations"]:
        for B in settings["batch_sizes"]:
            predicted = predicted_rate(act, B)
            mean, sd, se = _stats(logs("plain", width, act, B))
            drift = mean - _stats(logs("plain", drift_width, act, B))[0]
            rates.append({"activation": act, "batch_size": B, "measured": math.exp(mean),
                          "predicted": predicted})
            case = {"activation": act, "batch_size": B, "measured": math.exp(mean),
                    "predicted": predicted, "log_rate_mean": mean, "log_rate_sd": sd,
                    "log_rate_se": se, "drift": drift,
                    "rate_per_seed": [r["rate"] for r in grouped[("plain", width, act, B)]],
                    "judged": bool(predicted is not None
                                   and B <= settings["verdict_max_batch_ratio"] * width)}
            if predicted is not None:
                case["deviation"] = mean - math.log(predicted)
                case["tolerance"] = sigmas * se + settings["drift_factor"] * abs(drift)
                case["agrees"] = bool(abs(case["deviation"]) <= case["tolerance"])
                median = float(np.median(logs("plain", width, act, B)))
                case["alternative_agrees"] = {
                    "median": bool(abs(median - math.log(predicted)) <= case["tolerance"]),
                    "no_drift": bool(abs(case["deviation"]) <= sigmas * se)}
            cases.append(case)
            for arch in settings["architectures"]:
                if (arch, width, act, B) in grouped:
                    curve = np.mean([r["log_squared_norms"]
                                     for r in grouped[(arch, width, act, B)]], axis=0)
                    profiles.append({"activation": act, "batch_size": B,
                                     "architecture": arch,
                                     "log_squared_norm": (curve - curve[-1]).tolist()})
            if B not in settings["residual_batch_sizes"]:
                continue
            # residual vs plain, paired by init
            diffs = np.array(logs("plain", width, act, B)) - np.array(
                logs("residual", width, act, B))
            d_mean, _, d_se = _stats(diffs)
            res_mean, res_sd, _ = _stats(logs("residual", width, act, B))
            residual_cases.append({
                "activation": act, "batch_size": B, "plain": math.exp(mean),
                "residual": math.exp(res_mean), "residual_log_rate_sd": res_sd,
                "log_ratio_mean": d_mean, "log_ratio_se": d_se,
                "judged": bool(math.exp(mean) >= settings["exploding_rate"]),
                "relieved": bool(d_mean > sigmas * d_se)})

    judged = [c for c in cases if c["judged"]]
    judged_res = [c for c in residual_cases if c["judged"]]
    rate_fail = sum(not c["agrees"] for c in judged)
    res_fail = sum(not c["relieved"] for c in judged_res)
    verdict = verdict_of(judged, judged_res)
    alternatives = {name: verdict_of([{**c, "agrees": c["alternative_agrees"][key]}
                                      for c in judged], judged_res).label
                    for name, key in ALTERNATIVES.items()}

    wiki = []
    for c in judged:
        lam = c["predicted"]
        norm_rate = math.sqrt(c["measured"])
        wiki.append({"activation": c["activation"], "batch_size": c["batch_size"],
                     "lambda": lam, "sqrt_lambda": math.sqrt(lam),
                     "squared_norm_rate": c["measured"], "norm_rate": norm_rate,
                     "squared_reading_agrees": c["agrees"],
                     "norm_reading_agrees": bool(abs(math.log(norm_rate) - math.log(lam))
                                                 <= c["tolerance"])})
    measurements = {
        "rates": rates, "cases": cases, "residual": residual_cases,
        "profiles": profiles, "alternatives": alternatives,
        "wikipedia_reading": {
            "sentence": "the gradient NORM grows like lambda^L (Wikipedia seed)",
            "correct": "the SQUARED norm grows by lambda per layer, the norm by "
                       "sqrt(lambda)",
            "cases": wiki,
            "squared_reading_agrees": sum(w["squared_reading_agrees"] for w in wiki),
            "norm_reading_agrees": sum(w["norm_reading_agrees"] for w in wiki),
            "relu_large_batch_norm_rate_predicted": math.sqrt(LAMBDA_RELU_LIMIT)},
        "verdict_inputs": {
            "rate_cases": [{k: c[k] for k in ("activation", "batch_size", "measured",
                                              "predicted", "deviation", "tolerance",
                                              "agrees")} for c in judged],
            "rate_cases_failed": rate_fail,
            "residual_cases": [{k: c[k] for k in ("activation", "batch_size", "plain",
                                                  "residual", "log_ratio_mean",
                                                  "log_ratio_se", "relieved")}
                               for c in judged_res],
            "residual_cases_failed": res_fail},
    }
    return verdict, measurements


def summary(m):
    """The lines of the terminal report."""
    lines = ["per-layer growth of ||dL/dW_l||^2 going down (exp of the mean fitted "
             "log-slope over inits; +- sd of the log-rate):"]
    for c in m["cases"]:
        pred = "   none" if c["predicted"] is None else f"{c['predicted']:7.4f}"
        judge = ""
        if c["predicted"] is not None:
            judge = (f"  |dev| {abs(c['deviation']):.4f} vs tol {c['tolerance']:.4f} "
                     f"{'ok' if c['agrees'] else 'OFF'}"
                     f"{'' if c['judged'] else ' (B > width/8: not judged)'}")
        lines.append(f"  {c['activation']:6s} B={c['batch_size']:<4d} measured "
                     f"{c['measured']:7.4f} +- {c['log_rate_sd']:.4f}  lambda(B) {pred}"
                     f"{judge}")
    lines.append("residual blocks (same weights): rate plain -> residual")
    for c in m["residual"]:
        lines.append(f"  {c['activation']:6s} B={c['batch_size']:<4d} {c['plain']:7.4f} -> "
                     f"{c['residual']:7.4f}"
                     + (f"  {'relieved' if c['relieved'] else 'NOT relieved'}"
                        if c["judged"] else
                        f"  (plain < {EXPLODING_RATE:g}: not judged)"))
    w = m["wikipedia_reading"]
    lines.append(f"Wikipedia's 'norm grows like lambda^L': the squared-norm reading agrees "
                 f"in {w['squared_reading_agrees']}/{len(w['cases'])} judged cases, the "
                 f"norm reading in {w['norm_reading_agrees']}/{len(w['cases'])}; the norm "
                 f"grows by sqrt(lambda) (ReLU, B -> inf: "
                 f"{w['relu_large_batch_norm_rate_predicted']:.3f} per layer)")
    return lines


RULE = (f"{RULE_PARAMS['replicates']} random inits per case, width "
        f"{RULE_PARAMS['width']} (drift width {RULE_PARAMS['drift_width']}), depth "
        f"{RULE_PARAMS['depth']}, the rate fitted {RULE_PARAMS['skip']} layers or more from "
        "either end. For linear and ReLU and every batch size B <= width/8 (the closed forms are the "
        "infinite-width limit at fixed B; the pilot showed a finite-width correction "
        "growing with B/width), d = mean over inits of log(measured rate) - log lambda(B) "
        "must satisfy |d| <= 3 SE + 1.70 |drift|: SE the standard error of the log-rate "
        "across inits, drift = (mean log-rate at the width) - (at a quarter of it); "
        "1.70 |drift| = |drift|/(4^(1/3) - 1) bounds the remaining finite-width "
        "correction if it decays like width^-p with p >= 1/3 (a pilot at widths "
        "128..2048 gave p ~ 1/2 at B = 64; at B = 4 the infinite variance of 1/sigma^2 "
        "allows p = 1/3). And at the batch sizes with residual runs, for every net whose "
        f"plain rate is >= {EXPLODING_RATE:g} (an explosion to relieve; a cut-off away "
        "from every lambda(B) of the grid), the residual net's log-rate must be lower "
        "by more than 3 SE of the paired differences. Each case is a pre-registered "
        "condition: a case that passes supports; a failing case is undecided (one finite "
        "width cannot tell a wrong closed form from a larger finite-width correction) "
        "unless more than half of the rate cases (of the residual cases) fail, then they "
        "refute. Verdict (version 2): supported (refuted) if every case supports "
        "(refutes), mixed if some support and some refute, else underpowered (what "
        "decides it: the rates extrapolated in width). Fragility: the same rule on the "
        "median log-rate over inits, and without the finite-width allowance.")


def headline(inputs):
    """The verdict's key figures: how many judged rates agree with lambda(B), those
    that do not, and how many residual cases are relieved."""
    from .result import figure
    rates = inputs["rate_cases"]
    off = [c for c in rates if not c["agrees"]]
    text = f"{len(rates) - len(off)} of {len(rates)} judged rates agree with lambda(B)"
    if off:
        text += " (off: " + ", ".join(
            f"{c['activation']} B={c['batch_size']} {figure(c['measured'])} vs "
            f"{figure(c['predicted'])}" for c in off) + ")"
    residual = inputs.get("residual_cases", [])
    if residual:
        relieved = sum(bool(c["relieved"]) for c in residual)
        text += f"; residual blocks relieve {relieved} of {len(residual)} cases"
    return text


EXPERIMENT = Experiment(
    name="explosion",
    claim=("At initialization, a deep batch-normalized network suffers gradient explosion:"
           " going down the network the squared gradient norm grows by a factor "
           "lambda(B) > 1 per layer (lambda = (B-2)/(B-3) for linear networks, a closed "
           "form via the arc-cosine kernel for ReLU, pi/(pi-1) as B -> inf), so deep BN "
           "networks without skip connections are untrainable; residual connections "
           "relieve it. (Wikipedia: 'the gradient norm ... grows like lambda^L'.)"),
    source=("Yang, Pennington, Rao, Sohl-Dickstein, Schoenholz, 'A Mean Field Theory of "
            "Batch Normalization', ICLR 2019, arXiv:1902.08129, Theorems 8-9 and section "
            "'Gradient explosion'; Wikipedia 'Batch normalization' (seed)"),
    rule=RULE, rule_version=2, rule_params=RULE_PARAMS, settings=settings, tasks=tasks,
    run_task=run_task, conclude=conclude, summary=summary, headline=headline, order=5)
