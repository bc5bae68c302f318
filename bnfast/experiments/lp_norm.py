"""lp-norm: normalizing by the average lp norm (p = 1, 2, inf) instead of the standard
deviation performs comparably to BN, l1 even better on the deep linear network
(Santurkar et al. 2018, section 3.3, Figure 5; appendix B, Figures 12-13).

Version 3 (docs/experiments/lp_norm.md). Five normalizations (none, std = BN, l1, l2,
linf; docs/math/networks.md section 7) on the paper's 25-layer deep linear network (DLN,
full batch) and on the papers' architecture family on data that ships (problems.py):
the MNIST-1D Conv1d network and the digits Conv2d network, with softmax cross-entropy and
momentum SGD; the dense digits MLP (squared loss) is a reported extra. Each seed's five
nets share data, initial weights and SGD order. The verdict: per judged problem and p,
two one-sided t tests over seeds of the lp net's training-curve height against BN's,
with a margin of half of BN's gain over no normalization. Measured besides (reported):
test accuracy along training, the distribution shift of the layer inputs, the landscape
along the gradient (Figures 12-13), and the curvature controls (top Hessian eigenvalue
of the measurement batch against the stability threshold, effective learning rates).
"""

import math

import numpy as np

from ..nn import Network
from .measures import (effective_learning_rates, finite_or_none,
                       first_reach_steps, gradient_line_measures, measured_training,
                       measurement_batch, stability_threshold, step_sizes)
from .problems import RECIPES, build, paired_tasks, recipe, recipe_optimizer
from . import stats
from .result import combine
from .spec import Experiment, derived_seed

__all__ = ["EXPERIMENT"]

#: The normalizations: label -> BatchNorm norm (None: no normalization).
NORMS = {"none": None, "std": "std", "l1": "l1", "l2": "l2", "linf": "linf"}
LP = ("l1", "l2", "linf")
#: The problems whose conditions decide the verdict, and the reported extra.
JUDGED = ("dln", "mnist1d", "digits-images")
EXTRA = ("digits",)
#: The order of the tasks: the longest runs first, so that the workers end together.
TASK_ORDER = ("mnist1d", "digits-images", "dln", "digits")
#: The problems that stand in for the paper's VGG on CIFAR-10 (a refutation only there
#: reads "refuted in <setting>"); the DLN is the paper's own set-up.
REDUCED = ("mnist1d", "digits-images", "digits")
SETTINGS = {"dln": "the 25-layer deep linear network",
            "mnist1d": "the MNIST-1D Conv1d network",
            "digits-images": "the digits Conv2d network",
            "digits": "the dense digits MLP (squared loss)"}
#: Version 3's parameters (the single source; hashed with the rule's text).
RULE_PARAMS = {
    "seeds": 10, "alpha": 0.05, "margin_fraction": 0.5,
    "metric": "mean over recorded steps of log10(learning-set loss)",
    "steps": {"dln": 1000, "mnist1d": 4000, "digits-images": 1000, "digits": 2000},
    "record_every": {"dln": 1, "mnist1d": 100, "digits-images": 50, "digits": 10},
    "cnn_recipe": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 100},
    "dln_lr": 1e-6, "mlp_lr": 0.1, "mlp_batch_size": 128,
    "checkpoints": 5, "line_points": 6, "lanczos_steps": 20,
    "alternative_margin_fractions": [0.25, 0.75],
}
#: The alternative summaries of the fragility line: name -> (summary, centre, margin
#: fraction or None for the rule's).
ALTERNATIVES = {
    "test accuracy instead of the loss curve (CNNs)": ("accuracy", "mean", None),
    "log10 of the final loss instead of the curve mean": ("final", "mean", None),
    "matched loss (steps to the unnormalized net's final loss) instead of matched steps":
        ("matched_loss", "mean", None),
    "medians over seeds instead of means": ("curve", "median", None),
    "margin 0.25 x BN's gain (lp recovers at least 3/4 of it)": ("curve", "mean", 0.25),
    "margin 0.75 x BN's gain (lp recovers at least 1/4 of it)": ("curve", "mean", 0.75),
}

CLAIM = ("\"all these normalization strategies [lp normalization, p = 1, 2, inf: centre, "
         "then divide by the average lp norm of the activations] offer comparable "
         "performance to BatchNorm. In fact, for deep linear networks, l1-normalization "
         "performs even better than BatchNorm. Note that, qualitatively, the "
         "lp-normalization techniques lead to larger distributional shift (as considered "
         "in [Ioffe and Szegedy]) than the vanilla, i.e., unnormalized, networks, yet they "
         "still yield improved optimization performance.\"")
SOURCE = ("Santurkar, Tsipras, Ilyas, Madry (2018), \"How Does Batch Normalization Help "
          "Optimization?\", NeurIPS; section 3.3 and Figure 5 (VGG and deep linear "
          "network), appendix B Figures 12-13 (landscape of the lp variants).")
_P = RULE_PARAMS
RULE = (
    "Problems judged: the paper's 25-layer deep linear network (DLN; full-batch gradient "
    f"descent, sum loss, lr {_P['dln_lr']:g}, {_P['steps']['dln']:,} steps) and the papers' "
    "architecture family on data that ships: the MNIST-1D Conv1d network "
    f"({_P['steps']['mnist1d']:,} steps) and the digits Conv2d network "
    f"({_P['steps']['digits-images']:,} steps), both with softmax cross-entropy and "
    f"momentum SGD (lr {_P['cnn_recipe']['lr']:g}, momentum {_P['cnn_recipe']['momentum']:g}, "
    f"batches of {_P['cnn_recipe']['batch_size']}; problems.RECIPES). Five normalizations "
    "(none, std = BN, l1, l2, linf), each BN layer before a ReLU (CNNs) or after every "
    f"DLN layer but the last; {_P['seeds']} seeds, a seed's five nets paired (same data, "
    "initial weights, SGD order). Metric M = the mean over the recorded steps of "
    "log10(learning-set loss): the height of the training curve on a log scale at "
    "matched steps (lower = trains faster/further); a diverged run counts as M = +inf. "
    "For each judged problem and p = 1, 2, inf, 'comparable': per seed d = M_lp - M_BN; "
    f"margin = {_P['margin_fraction']:g} x BN's gain over no normalization (the mean over "
    "seeds of M_none - M_BN, seeds where either diverged left out: lp recovers at least "
    "half of BN's gain); two one-sided t "
    f"tests over seeds (alpha {_P['alpha']:g}), i.e. the (1 - 2 alpha) t interval of d: "
    "supported if its upper end is below +margin (inside +-margin: equivalent; wholly "
    "below -margin: lp better; straddling -margin: equivalent or better), refuted if its "
    "lower end is above +margin (lp worse than BN by more than the margin), else "
    "undecided; undecided too when BN has no gain (mean gain <= 0: no margin). Verdict: "
    "result.combine over the nine conditions (supported or refuted if all are, mixed if "
    "some support and some refute, else underpowered); a refutation whose conditions are "
    "all in the CNNs (reduced stand-ins for the paper's VGG on CIFAR-10) reads 'refuted "
    "in <those settings>'. Reported, not judged: the same conditions on the dense digits "
    f"MLP (squared loss, {_P['steps']['digits']:,} SGD steps; an extra); 'l1 beats BN on "
    "the DLN' (the paper's remark: supported if the (1 - 2 alpha) t interval of M_l1 - "
    "M_BN lies below 0, refuted if above 0); the layer-input distribution shift against "
    "no normalization; test accuracy; the landscape along the gradient and the curvature "
    "controls (top Hessian eigenvalue of the measurement batch against the stability "
    "threshold (2 + 2 momentum)/lr, effective learning rates lr/||W||^2) at "
    f"{_P['checkpoints']} checkpoints. Fragility: the same rule with test accuracy "
    "instead of M for the CNNs; with log10 of the final loss; at matched loss (the "
    "fraction of the run a net takes to first reach the loss the unnormalized net ends "
    "at; never: +inf; no level, d = 0, where that net diverged) instead of matched "
    "steps; with medians (BN's median gain; the "
    "order-statistic interval of the median of d, coverage >= 1 - 2 alpha) instead of "
    "means; with margins of " + " and ".join(
        f"{f:g}" for f in _P["alternative_margin_fractions"]) + " x BN's gain.")
#: Version 1's rule text (kept for the reading of version-1 results and the registry).
RULE_V1 = (
    "Curve metric M = the mean over the run's recorded steps of log10(training loss) "
    "(the height of the loss curve on a log scale: lower = trains faster/further). "
    "Seed spread s = the pooled within-normalization standard deviation of M across "
    "seeds over BN and the three lp nets (what changing the seed alone does to one run: "
    "the equivalence margin of 'comparable'), per problem. Paired differences are per "
    "seed (same data, initial weights, SGD order). "
    "(a) comparable: for both problems and p = 1, 2, inf, d = mean(M_lp - M_BN); "
    "supported if every d <= 2 s (within the seed spread; better is "
    "comparable too), refuted if any d > 4 s, else inconclusive. "
    "(b) l1 beats BN on the DLN: d = mean(M_l1 - M_BN), SE its standard error over "
    "seeds; supported if d < -2 SE and l1 is lower on every seed, refuted "
    "if d > 2 SE, else inconclusive. "
    "(c) lp shifts the layer-input distributions more than no normalization: shift = "
    "relative 2-Wasserstein distance between the per-unit Gaussian fits (mean, std) of "
    "each layer's input at the start and at the end of training, averaged over layers; "
    "for both problems and every p, d = mean(shift_lp - shift_none); supported if every "
    "d > 2 SE, refuted if any d < -2 SE, else inconclusive. "
    "Overall: supported if (a), (b), (c) are all supported, refuted if any is refuted, "
    "else inconclusive. The landscape measures of the lp nets (Figures 12-13) are "
    "reported, not judged.")

#: The quick run's sizes (every other number as the full run's).
QUICK = {"seeds": 2, "steps": {"dln": 90, "mnist1d": 300, "digits-images": 150,
                               "digits": 150},
         "record_every": {"dln": 1, "mnist1d": 50, "digits-images": 25, "digits": 10},
         "checkpoints": 3, "line_points": 3, "lanczos_steps": 8}


def settings(quick):
    """The set-up: quick and full differ in steps, records, checkpoints and seeds only.
    Each problem's dict is its task set-up (``build``, ``measured_training``): lr,
    steps, every (checkpoint interval), batch_size (None: full batch), record_every,
    the line-measure step sizes (multipliers, spacing); the CNNs add the momentum-SGD
    recipe (momentum, weight_decay), checked against problems.RECIPES."""
    sizes = QUICK if quick else RULE_PARAMS
    steps, record = sizes["steps"], sizes["record_every"]
    count = sizes["checkpoints"]
    cnn = RULE_PARAMS["cnn_recipe"]
    out = {
        "dln": {"depth": 25, "width": 10, "samples": 1000, "loss": "sum",
                "lr": RULE_PARAMS["dln_lr"], "batch_size": None,
                "multipliers": [1 / 100, 30], "spacing": "log", "init": "glorot"},
        "digits": {"hidden": [100, 100], "activation": "relu", "loss": "mean",
                   "lr": RULE_PARAMS["mlp_lr"], "batch_size": RULE_PARAMS["mlp_batch_size"],
                   "multipliers": [1 / 2, 4], "spacing": "linear", "init": "glorot"},
    }
    for problem in ("mnist1d", "digits-images"):
        setup = recipe(problem, quick)
        if any(setup[key] != value for key, value in cnn.items()):
            raise ValueError(f"problems.RECIPES[{problem!r}] changed ({setup}); lp-norm's "
                             f"rule registers {cnn}: register a new rule version")
        # Momentum SGD's steady step is lr / (1 - momentum) = 10 lr: the line reaches it.
        out[problem] = {**setup, "multipliers": [1 / 2, 10], "spacing": "linear",
                        "init": "pytorch", "data": "default"}
    for problem in TASK_ORDER:
        out[problem].update(steps=steps[problem], record_every=record[problem],
                            every=steps[problem] // count)
    schedule = {}
    for problem in ("mnist1d", "digits-images"):
        full = RECIPES[problem]["quick" if quick else "full"]["steps"]
        schedule[problem] = (f"{steps[problem]:,} steps" + (
            f" (the {'quick' if quick else 'full'} recipe's schedule)"
            if steps[problem] == full else f" (the recipe's {full:,} shortened)"))
    reduced = [
        "the papers' VGG on CIFAR-10 is stood in for by two small CNNs on data that "
        "ships (no download, 2 shared cores): the MNIST-1D Conv1d network (3 conv layers "
        f"of 25 channels) for {schedule['mnist1d']} and the digits Conv2d network (16 and "
        f"32 channels, 8x8 images) for {schedule['digits-images']}, with the momentum-SGD "
        "recipes of problems.RECIPES (one learning rate; the paper also shows others)",
        f"deep linear network: {steps['dln']:,} full-batch steps at lr 1e-6, one "
        "learning rate",
        f"{sizes['seeds']} seeds per normalization and problem",
        f"the dense digits MLP (squared loss, {steps['digits']:,} SGD steps) only as a "
        "reported extra",
        f"landscape and curvature controls at {count} checkpoints on one measurement "
        "batch (the training batch size; the DLN's full batch), "
        f"{sizes['line_points']} step sizes along the gradient, {sizes['lanczos_steps']} "
        "Lanczos steps for the top Hessian eigenvalue",
    ]
    return {**out, "problems": list(TASK_ORDER), "judged": list(JUDGED),
            "extra": list(EXTRA), "norms": list(NORMS), "seeds": sizes["seeds"],
            "line_points": sizes["line_points"], "lanczos_steps": sizes["lanczos_steps"],
            "reduced": reduced}


def tasks(settings, seed):
    """One task per (problem, seed index, normalization), the longest problems first; a
    seed's five nets share data, initial weights (W and b; gamma = 1, beta = 0), SGD
    order and measurement batches."""
    return paired_tasks(settings, seed, NORMS, problems=tuple(settings["problems"]),
                        line_points=settings["line_points"],
                        lanczos_steps=settings["lanczos_steps"])


# ---- measurements -------------------------------------------------------------------

def layer_inputs(net, X):
    """The inputs of the layers after each Dense or Conv layer but the last layer: the
    outputs of the first k layers, for each k < L whose layer k (1-based) has weights,
    in train mode (batch statistics over the rows of X), as a list of arrays (m, ...)
    (a Dense layer's (m, width), a Conv1d's (m, channels, positions)). For a network of
    Dense layers only: layers 2..L's inputs. Each is the forward pass of the network cut
    after layer k, with the same parameters (a plain network: no Residual)."""
    params, slices, layout = net.params, net.param_slices, net.param_layout()
    outputs = []
    for k in range(1, len(net.layers)):
        if "W" not in layout[k - 1]:
            continue
        head = Network(net.layers[:k], loss=net.loss_kind)
        head.params = params[:slices[k - 1].stop]
        outputs.append(head.forward(X))
    return outputs


def distribution_shift(before, after):
    """Per layer, the relative 2-Wasserstein distance between the per-unit Gaussian fits
    of a layer's input before and after training:
    sqrt(mean_j[(mu'_j - mu_j)^2 + (sd'_j - sd_j)^2]) / sqrt(mean_j[mu_j^2 + sd_j^2]),
    mu, sd the means and standard deviations over the rows (axis 0) of each unit j (a
    column, or a (channel, position) of a conv output). before, after: lists of
    (m, ...) arrays. Returns a list of floats (inf where the layer started at 0)."""
    shifts = []
    for a, b in zip(before, after):
        mu0, sd0, mu1, sd1 = a.mean(0), a.std(0), b.mean(0), b.std(0)
        scale = np.sqrt(np.mean(mu0 ** 2 + sd0 ** 2))
        distance = np.sqrt(np.mean((mu1 - mu0) ** 2 + (sd1 - sd0) ** 2))
        shifts.append(float(distance / scale) if scale > 0 else float("inf"))
    return shifts


def top_hessian_eigenvalue(net, X, y, steps=20, seed=0):
    """The largest (algebraic) eigenvalue of H, the Hessian of the train-mode loss on
    X (m, ...), y at ``net.params``: ``steps`` Lanczos steps on exact Hessian-vector
    products (net.hvp) from a Gaussian start drawn from default_rng(seed), with full
    reorthogonalisation; returns the largest eigenvalue of the tridiagonal matrix T
    (k x k, k <= steps) of the Lanczos coefficients (its largest Ritz value: a lower
    bound of lambda_max that converges first, and exact for steps >= num_params in
    exact arithmetic). Unlike power iteration it finds the top of the spectrum even when
    a negative eigenvalue is larger in magnitude. None if a product is not finite."""
    n = net.num_params
    q = np.random.default_rng(seed).standard_normal(n)
    basis = [q / np.linalg.norm(q)]
    alphas, betas = [], []
    for j in range(min(int(steps), n)):
        w = net.hvp(X, y, basis[-1])
        if not np.all(np.isfinite(w)):
            return None
        alphas.append(float(w @ basis[-1]))
        Q = np.array(basis)
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)        # twice: orthogonal to the basis to rounding
        beta = float(np.linalg.norm(w))
        if j == min(int(steps), n) - 1 or beta <= 1e-12 * max(abs(alphas[-1]), 1e-300):
            break                    # an invariant subspace: T's eigenvalues are exact
        betas.append(beta)
        basis.append(w / beta)
    T = np.diag(alphas) + np.diag(betas[:len(alphas) - 1], 1) \
        + np.diag(betas[:len(alphas) - 1], -1)
    return float(np.linalg.eigvalsh(T)[-1])


def run_task(task):
    """Trains one net and measures it along the way.

    Returns a JSON-able dict: problem, config, replicate; losses (the learning-set loss,
    at most 200 points) at loss_steps; curve_metric (M), final_loss, diverged_step;
    shift (mean over layers) and shift_per_layer; test_accuracy (the CNNs and the MLP,
    BN in inference mode); checkpoints: at steps 0, every, ..., steps the landscape
    along the gradient (loss, grad_norm, loss_range, grad_change_max, beta), the top
    Hessian eigenvalue of the measurement batch (sharpness) and its ratio to the
    stability threshold (2 + 2 momentum)/lr, the median effective learning rate
    lr/||W||^2 over the normalized layers (None without normalization), and the test
    accuracy."""
    setup = task["setup"]
    net, X, y, test = build(task)
    momentum = setup.get("momentum", 0.0)
    optimizer = recipe_optimizer(setup) if "momentum" in setup else None
    threshold = stability_threshold(setup["lr"], momentum)
    etas = step_sizes(setup, task["line_points"])
    # The layer inputs on the learning set (at most 1000 rows: enough for a mean and std).
    probe = X[:1000]
    start_inputs = layer_inputs(net, probe)

    def accuracy(net):
        X_test, labels = test
        return float(np.mean(net.predict(X_test).argmax(1) == labels))

    def measure(net, step):
        Xb, yb = measurement_batch(X, y, setup["batch_size"], task["seed"], step)
        values = gradient_line_measures(net, Xb, yb, etas)
        out = {key: values[key] for key in ("loss", "grad_norm", "loss_range",
                                            "grad_change_max", "beta")}
        with np.errstate(all="ignore"):
            sharp = top_hessian_eigenvalue(net, Xb, yb, task["lanczos_steps"],
                                           seed=derived_seed(task["seed"], 5, step))
        out["sharpness"] = sharp
        out["sharpness_ratio"] = None if sharp is None else sharp / threshold
        rates = [r for r in effective_learning_rates(net, setup["lr"])["effective_lr"]
                 if r is not None]
        out["effective_lr"] = float(np.median(rates)) if rates else None
        out["test_accuracy"] = accuracy(net) if test is not None else None
        return out

    losses, checkpoints, diverged = measured_training(
        net, X, y, setup["lr"], setup["steps"], setup["every"], measure,
        batch_size=setup["batch_size"], seed=derived_seed(task["seed"], 4),
        record_every=setup["record_every"], optimizer=optimizer)
    shift = distribution_shift(start_inputs, layer_inputs(net, probe)) \
        if diverged is None else None
    index = np.unique(np.linspace(0, len(losses) - 1, min(len(losses), 200))
                      .round().astype(np.int64))
    result = {"problem": task["problem"], "config": task["config"],
              "replicate": task["replicate"], "steps": setup["steps"],
              "losses": finite_or_none(losses[index]),
              "loss_steps": (index * setup["record_every"]).tolist(),
              "curve_metric": curve_metric(losses) if diverged is None else None,
              "final_loss": float(losses[-1]) if diverged is None else None,
              "diverged_step": diverged, "checkpoints": checkpoints,
              "sharpness_threshold": threshold,
              "shift": None if shift is None else float(np.mean(shift)),
              "shift_per_layer": shift}
    if test is not None:
        result["test_accuracy"] = accuracy(net) if diverged is None else None
    return result


def curve_metric(losses):
    """M = mean of log10(loss) over the recorded steps, losses (n,) positive."""
    return float(np.mean(np.log10(np.asarray(losses, dtype=np.float64))))


# ---- the rule -----------------------------------------------------------------------

def median_interval(values, level):
    """A distribution-free interval for the median of i.i.d. values (n,) (floats, +-inf
    allowed): [x_(k), x_(n+1-k)] of the sorted values, k the largest with
    P(Binomial(n, 1/2) <= k - 1) <= (1 - level) / 2, so its coverage is at least
    ``level``. Returns {"n", "median", "low", "high"} (low/high None when no k >= 1
    exists: n too small, e.g. n < 5 at level 0.9)."""
    x = sorted(float(v) for v in values)
    n = len(x)
    out = {"n": n, "median": float(np.median(x)) if n else None, "low": None,
           "high": None}
    tail, k, cumulative = (1.0 - level) / 2.0, 0, 0.0
    for j in range(n):
        cumulative += math.comb(n, j) / 2.0 ** n        # P(B <= j)
        if cumulative > tail:
            break
        k = j + 1
    if k >= 1 and n + 1 - k > k - 1:
        out.update(low=x[k - 1], high=x[n - k])
    return out


def equivalence(differences, margin, alpha, centre="mean"):
    """Two one-sided tests of d (one value per seed; lower = lp better) against
    +-margin: the (1 - 2 alpha) interval of the centre of d (the Student-t interval of
    the mean, stats.tost; or median_interval of the median).

    Returns {"low", "high", "mean" (or "median"), "tost" (equivalent / below / above /
    undecided: the interval inside +-margin, wholly below -margin, wholly above
    +margin, else), "outcome"}: outcome "supported" if high < +margin (lp not worse than
    BN by the margin: equivalent, better, or straddling -margin), "refuted" if
    low > +margin, else "undecided". With an infinite d (a diverged run) the t
    interval is undefined: "above" (refuted) if every seed's d > margin, "below"
    (supported) if every d < -margin, else undecided (stats.tost)."""
    if centre == "mean":
        test = stats.tost(differences, margin, alpha)
        out = {key: test[key] for key in ("n", "mean", "se", "margin", "low", "high",
                                          "p_lower", "p_upper")}
        tost = test["outcome"]
    else:
        out = {**median_interval(differences, 1.0 - 2.0 * alpha), "margin": float(margin)}
        low, high = out["low"], out["high"]
        tost = ("undecided" if low is None else "equivalent" if -margin < low and
                high < margin else "above" if low > margin else "below"
                if high < -margin else "undecided")
    high = out["high"]
    out["tost"] = tost
    out["outcome"] = ("supported" if tost in ("equivalent", "below") or
                      (high is not None and high < margin) else
                      "refuted" if tost == "above" else "undecided")
    return out


def judge(metric, alpha=None, margin_fraction=None, centre="mean"):
    """The conditions. metric : {problem: {label: [value per seed]}} (lower is better;
    None: diverged, +inf). Returns {"comparable <problem> <p>": {"outcome", "margin",
    "bn_gain_over_none", the interval, ...}} for each problem in ``metric`` and p: d =
    M_lp - M_BN per seed against +- margin_fraction x BN's gain (the mean, or the
    median for centre="median", over seeds of M_none - M_BN, diverged pairs left out)."""
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    fraction = RULE_PARAMS["margin_fraction"] if margin_fraction is None \
        else margin_fraction
    conditions = {}
    for problem in metric:
        gain = [g for g in paired_differences(metric[problem], "none", "std")
                if math.isfinite(g)]
        centre_gain = (None if not gain else float(np.mean(gain)) if centre == "mean"
                       else float(np.median(gain)))
        for p in LP:
            entry = {"bn_gain_over_none": centre_gain}
            if centre_gain is None or centre_gain <= 0:
                entry.update(outcome="undecided", tost="undecided",
                             reason="BN has no gain over no normalization: no margin")
            else:
                entry.update(equivalence(paired_differences(metric[problem], p, "std"),
                                         fraction * centre_gain, alpha, centre))
            conditions[f"comparable {problem} {p}"] = entry
    return conditions


def paired_differences(values, first, second):
    """Per seed, values[first] - values[second] (None: +inf, worse). Equal values give
    0, infinite ones too: both runs diverged, or both never reached a matched loss, is
    no difference (inf - inf would be undefined)."""
    out = []
    for x, y in zip(values[first], values[second]):
        x, y = (math.inf if x is None else x), (math.inf if y is None else y)
        out.append(0.0 if x == y else x - y)
    return out


def verdict_of(conditions):
    """result.combine over the conditions. The setting is the problems judged; a
    refutation whose conditions are all in the CNNs (REDUCED) is reduced ("refuted in
    <those settings>"). The undecided conditions say what would decide them."""
    outcomes = {name: c["outcome"] for name, c in conditions.items()}
    problems = list(dict.fromkeys(name.split()[1] for name in conditions))
    setting = " and ".join(SETTINGS[p] for p in problems)
    reduced = bool(outcomes) and all(o == "refuted" for o in outcomes.values()) \
        and all(p in REDUCED for p in problems)
    no_gain = sorted({name.split()[1] for name, c in conditions.items()
                      if c["outcome"] == "undecided" and "reason" in c})
    decide = ("more seeds: an interval that straddles +margin (half of BN's gain over "
              "no normalization) narrows as 1/sqrt(seeds)")
    if no_gain:
        decide += ("; a set-up where BN trains measurably faster than no normalization "
                   f"({', '.join(no_gain)}: no gain, no margin)")
    return combine(outcomes, setting, reduced=reduced, decide=decide)


def _metric(run, summary, level=None):
    """A run's value under a summary (lower is better; None: diverged or undefined):
    "curve" M; "final" log10 of the final loss; "accuracy" minus the test accuracy (the
    DLN, without a test set: M); "matched_loss" the fraction of the run until the loss
    first reaches ``level`` (+inf: never)."""
    if summary == "matched_loss":
        if level is None or not math.isfinite(level):
            return None
        losses = [math.inf if v is None else v for v in run["losses"]]
        reached = first_reach_steps(losses, [level])[0]
        return math.inf if reached is None else run["loss_steps"][reached] / run["steps"]
    if run["final_loss"] is None:
        return None
    if summary == "curve" or (summary == "accuracy" and "test_accuracy" not in run):
        return run["curve_metric"]
    if summary == "accuracy":
        return -run["test_accuracy"]
    return math.log10(run["final_loss"]) if run["final_loss"] > 0 else -math.inf


def metrics(runs, summary):
    """{problem: {label: [value per seed]}} of the runs (grouped as in conclude) under
    ``summary``; for "matched_loss" the level of each seed is the final loss of its
    unnormalized net (its seed's values are None if that net diverged)."""
    out = {}
    for problem, by_norm in runs.items():
        levels = [r["final_loss"] for r in by_norm["none"]] \
            if summary == "matched_loss" else [None] * len(by_norm["none"])
        out[problem] = {label: [_metric(r, summary, level)
                                for r, level in zip(by_norm[label], levels)]
                        for label in NORMS}
    return out


def conclude(settings, results):
    """Groups the runs by problem and normalization (in seed order), applies the rule
    to the judged problems, and reports the extra, the sub-claims and the controls."""
    present = [p for p in settings["problems"] if any(r["problem"] == p for r in results)]
    runs = {problem: {label: sorted((r for r in results if r["problem"] == problem
                                     and r["config"] == label),
                                    key=lambda r: r["replicate"])
                      for label in NORMS}
            for problem in present}
    judged = [p for p in settings["judged"] if p in runs]
    extra = [p for p in settings["extra"] if p in runs]

    def rule(summary, centre="mean", fraction=None, problems=judged):
        values = metrics({p: runs[p] for p in problems}, summary)
        return judge(values, margin_fraction=fraction, centre=centre)

    conditions = rule("curve")
    verdict = verdict_of(conditions)
    alternative_conditions = {name: rule(summary, centre, fraction) for name, (
        summary, centre, fraction) in ALTERNATIVES.items()}
    alternatives = {name: verdict_of(c).label for name, c in alternative_conditions.items()}
    extra_conditions = rule("curve", problems=extra) if extra else {}
    sub_claims = _sub_claims(runs)
    problems = {problem: {label: _norm_summary(runs[problem][label], settings[problem])
                          for label in NORMS} for problem in runs}
    measurements = {
        "judged": judged, "extra": extra, "problems": problems,
        "conditions": conditions, "extra_conditions": extra_conditions,
        "sub_claims": sub_claims, "alternatives": alternatives,
        "alternative_conditions": {name: {k: c["outcome"] for k, c in conds.items()}
                                   for name, conds in alternative_conditions.items()},
        "verdict_inputs": {"conditions": conditions},
    }
    return verdict, _strict(measurements)


def _strict(value):
    """``value`` with every non-finite float (an interval end or mean made infinite by
    a diverged run) as None, so that the result is strict JSON; the outcomes keep what
    the infinities decided."""
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _interval_outcome(differences, alpha):
    """The (1 - 2 alpha) t interval of per-seed differences and its sign: "supported"
    if it lies above 0, "refuted" below 0, else "undecided"."""
    interval = stats.t_interval(differences, 1.0 - 2.0 * alpha)
    outcome = ("supported" if interval["low"] is not None and interval["low"] > 0
               else "refuted" if interval["high"] is not None and interval["high"] < 0
               else "undecided")
    return {**interval, "outcome": outcome}


def _sub_claims(runs):
    """The paper's remarks, reported: l1 beats BN on the DLN (M_BN - M_l1 > 0), and the
    lp nets' layer inputs shift more than the unnormalized net's (shift_lp - shift_none
    > 0), per problem and p (seeds where either run diverged left out)."""
    alpha = RULE_PARAMS["alpha"]
    out = {}
    if "dln" in runs:
        values = metrics({"dln": runs["dln"]}, "curve")["dln"]
        out["l1 beats BN on the DLN"] = _interval_outcome(
            [-d for d in paired_differences(values, "l1", "std")], alpha)
    shifts = {}
    for problem, by_norm in runs.items():
        for p in LP:
            d = [a["shift"] - b["shift"] for a, b in zip(by_norm[p], by_norm["none"])
                 if a["shift"] is not None and b["shift"] is not None
                 and math.isfinite(a["shift"]) and math.isfinite(b["shift"])]
            shifts[f"{problem} {p}"] = _interval_outcome(d, alpha)
    label = combine({k: v["outcome"] for k, v in shifts.items()}, "").label
    out["lp inputs shift more than unnormalized"] = {"verdict": label,
                                                     "differences": shifts}
    return out


def _norm_summary(norm_runs, setup):
    """Per normalization: curves per seed, metrics, shift, test accuracy, and the
    checkpoint measures (landscape, curvature controls) per seed."""
    early = [c for run in norm_runs for c in run["checkpoints"]
             if c["step"] <= setup["steps"] / 2]

    def median(key):
        vals = [c[key] for c in early if c.get(key) is not None]
        return float(np.median(vals)) if vals else None

    def along(key):
        return [[c.get(key) for c in run["checkpoints"]] for run in norm_runs]

    summary = {
        "losses": [run["losses"] for run in norm_runs],
        "loss_steps": norm_runs[0]["loss_steps"] if norm_runs else [],
        "curve_metric": [run["curve_metric"] for run in norm_runs],
        "final_loss": [run["final_loss"] for run in norm_runs],
        "diverged_step": [run["diverged_step"] for run in norm_runs],
        "shift": [run["shift"] for run in norm_runs],
        "shift_per_layer": [run["shift_per_layer"] for run in norm_runs],
        "checkpoint_steps": [c["step"] for c in norm_runs[0]["checkpoints"]],
        "beta": along("beta"), "grad_change_max": along("grad_change_max"),
        "sharpness": along("sharpness"), "sharpness_ratio": along("sharpness_ratio"),
        "effective_lr": along("effective_lr"),
        "sharpness_threshold": norm_runs[0]["sharpness_threshold"],
        "early_median": {key: median(key) for key in ("loss_range", "grad_change_max",
                                                      "beta")},
    }
    if "test_accuracy" in norm_runs[0]:
        summary["test_accuracy"] = [run.get("test_accuracy") for run in norm_runs]
        summary["test_accuracy_along"] = along("test_accuracy")
    return summary


# ---- the report ---------------------------------------------------------------------

_TITLES = {"dln": "deep linear network", "mnist1d": "MNIST-1D Conv1d network",
           "digits-images": "digits Conv2d network",
           "digits": "dense digits MLP (reported extra)"}


def _median(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(values)) if values else None


def summary(measurements):
    """The terminal report's lines."""
    if "judged" not in measurements:
        return _summary_v1(measurements)
    lines = []
    for problem, block in measurements["problems"].items():
        lines.append(f"{_TITLES[problem]}: medians over seeds of M (mean log10 loss), "
                     "final loss, test accuracy, layer-input shift, sharpness / threshold "
                     "and effective lr at the end")
        for norm, b in block.items():
            metric = _median(b["curve_metric"])
            if metric is None:
                lines.append(f"  {norm:>4}: diverged")
                continue
            text = f"  {norm:>4}: M {metric:.3f}, final {_fmt(_median(b['final_loss']))}"
            if "test_accuracy" in b:
                text += f", acc {_fmt(_median(b['test_accuracy']))}"
            text += f", shift {_fmt(_median(b['shift']))}"
            ratio = _median([run[-1] for run in b["sharpness_ratio"]])
            text += f", sharpness/threshold {_fmt(ratio)}"
            rate = _median([run[-1] for run in b["effective_lr"]])
            text += f", eff. lr {_fmt(rate)}" if rate is not None else ""
            lines.append(text)
    lines += _condition_lines(measurements["conditions"])
    if measurements["extra_conditions"]:
        lines.append("reported extra (not judged):")
        lines += ["  " + line for line in _condition_lines(measurements["extra_conditions"])]
    claims = measurements["sub_claims"]
    if "l1 beats BN on the DLN" in claims:
        c = claims["l1 beats BN on the DLN"]
        lines.append(f"l1 beats BN on the DLN (reported): M_BN - M_l1 mean "
                     f"{_fmt(c['mean'])}, {1 - 2 * RULE_PARAMS['alpha']:.0%} interval "
                     f"[{_fmt(c['low'])}, {_fmt(c['high'])}] -> {c['outcome']}")
    c = claims["lp inputs shift more than unnormalized"]
    lines.append("lp shift - unnormalized shift (reported): " + ", ".join(
        f"{k} {_fmt(v['mean'])}" for k, v in c["differences"].items())
        + f" -> {c['verdict']}")
    return lines


def _condition_lines(conditions):
    lines = []
    for name, c in conditions.items():
        interval = (f"[{_fmt(c.get('low'))}, {_fmt(c.get('high'))}]"
                    if c.get("low") is not None or c.get("high") is not None else "n/a")
        margin = f" margin +{_fmt(c['margin'])}" if c.get("margin") is not None else ""
        centre = c.get("mean", c.get("median"))
        lines.append(f"{name}: M_lp - M_BN {_fmt(centre)}, "
                     f"{1 - 2 * RULE_PARAMS['alpha']:.0%} interval {interval}{margin} "
                     f"(BN's gain {_fmt(c['bn_gain_over_none'])}) -> {c['outcome']}")
    return lines


def _fmt(value):
    return "n/a" if value is None else f"{value:.3g}"


def headline(inputs):
    """The verdict's key figures: per problem, BN's margin and, per norm, M_lp - M_BN
    (mean over seeds) with the outcome's initial (S/R/U)."""
    if "conditions" not in inputs:
        return _headline_v1(inputs)
    problems = {}
    for name, c in inputs["conditions"].items():
        problem, norm = name.replace("comparable ", "").rsplit(" ", 1)
        margin, parts = problems.setdefault(problem, (c.get("margin"), []))
        parts.append(f"{norm} {_fmt(c.get('mean'))} {c['outcome'][0].upper()}")
    return "M_lp - M_BN (margin): " + "; ".join(
        f"{problem} ({_fmt(margin)}) {', '.join(parts)}"
        for problem, (margin, parts) in problems.items())


# ---- version-1 results (docs/experiments/results before version 2) ------------------

#: The sub-claims' short names, as version 1's report and figure give them.
SUB_CLAIMS = {"a_comparable_to_bn": "(a) lp comparable to BN",
              "b_l1_beats_bn_on_dln": "(b) l1 beats BN on the DLN",
              "c_lp_larger_shift_than_none": "(c) lp inputs shift more than unnormalized"}


def _combine_v1(outcomes):
    """Version 1: supported if all supported, refuted if any refuted, else inconclusive."""
    if outcomes and all(o == "supported" for o in outcomes):
        return "supported"
    if "refuted" in outcomes:
        return "refuted"
    return "inconclusive"


def deciding(sub_claims, verdict):
    """The version-1 sub-claims that decide ``verdict``: the refuted ones for
    "refuted", all for "supported", the inconclusive ones otherwise."""
    if verdict == "supported":
        return list(sub_claims)
    return [name for name, claim in sub_claims.items() if claim["verdict"] == verdict]


def _summary_v1(measurements):
    lines = []
    for problem, label in (("dln", "deep linear network"), ("digits", "digits MLP")):
        lines.append(f"{label}: curve metric M = mean log10 loss (median over seeds), "
                     "distribution shift, early median effective beta-smoothness")
        for norm, block in measurements["problems"][problem].items():
            metric = [v for v in block["curve_metric"] if v is not None]
            shift = [v for v in block["shift"] if v is not None]
            beta = block["early_median"]["beta"]
            text = (f"  {norm:>4}: M {np.median(metric):.3f}" if metric else
                    f"  {norm:>4}: diverged")
            text += f", shift {np.median(shift):.3g}" if shift else ""
            text += f", beta {beta:.3g}" if beta is not None else ""
            if "test_accuracy" in block:
                acc = [v for v in block["test_accuracy"] if v is not None]
                text += f", test accuracy {np.median(acc):.3f}" if acc else ""
            lines.append(text)
    claims = measurements["sub_claims"]
    a = claims["a_comparable_to_bn"]
    lines.append("(a) lp comparable to BN: M_lp - M_BN = " + ", ".join(
        f"{k} {_fmt(v['mean'])}" for k, v in a["differences"].items())
        + "; tolerance 2 x seed spread: " + ", ".join(
        f"{k} {_fmt(v)}" for k, v in a["tolerance"].items()) + f" -> {a['verdict']}")
    b = claims["b_l1_beats_bn_on_dln"]
    lines.append(f"(b) l1 beats BN on the DLN: M_l1 - M_BN = {_fmt(b['difference']['mean'])}"
                 f" (SE {_fmt(b['difference']['se'])}, lower on every seed: "
                 f"{b['difference']['all_lower']}) -> {b['verdict']}")
    c = claims["c_lp_larger_shift_than_none"]
    lines.append("(c) lp shift - unnormalized shift: " + ", ".join(
        f"{k} {_fmt(v['mean'])} (SE {_fmt(v['se'])})" for k, v in c["differences"].items())
        + f" -> {c['verdict']}")
    return lines


def _headline_v1(inputs):
    a, b = inputs["a_comparable_to_bn"], inputs["b_l1_beats_bn_on_dln"]
    c = inputs["c_lp_larger_shift_than_none"]
    worst = max((d["mean"] for d in a["differences"].values() if d["mean"] is not None),
                default=None)
    biggest = max((d["mean"] for d in c["differences"].values() if d["mean"] is not None),
                  default=None)
    parts = [f"(a) {a['verdict']} (M_lp - M_BN up to {_fmt(worst)} decades; tolerance "
             + ", ".join(f"{k} {_fmt(v)}" for k, v in a["tolerance"].items()) + ")",
             f"(b) {b['verdict']} (M_l1 - M_BN {_fmt(b['difference']['mean'])}, SE "
             f"{_fmt(b['difference']['se'])})",
             f"(c) {c['verdict']} (lp shift - unnormalized shift at most {_fmt(biggest)})"]
    overall = _combine_v1([claim["verdict"] for claim in inputs.values()])
    decided = [SUB_CLAIMS[n].split()[0] for n in deciding(inputs, overall)]
    return "; ".join(parts) + f"; decided by {', '.join(decided)}"


#: The claim in a few words, for the README's and the report's tables.
TITLE = ("Normalizing by the l1, l2 or l-inf norm instead of the std performs comparably "
         "to BN (Santurkar et al. 2018, 3.3, Fig. 5)")

EXPERIMENT = Experiment(name="lp-norm", claim=CLAIM, source=SOURCE, rule=RULE,
                        rule_version=3, rule_params=RULE_PARAMS,
                        settings=settings, tasks=tasks, run_task=run_task,
                        conclude=conclude, summary=summary, headline=headline, order=4,
                        title=TITLE)
