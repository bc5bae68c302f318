"""Internal covariate shift (Santurkar et al. 2018, section 2.2, Definition 2.1, Figure 5):
BN does not reduce it, yet BN nets train faster.

Definition 2.1, for layer i at step t of a network with k layers:

    G  = grad_{W_i} L(W_1^t, ..., W_k^t; x^t, y^t)
    G' = grad_{W_i} L(W_1^{t+1}, ..., W_{i-1}^{t+1}, W_i^t, ..., W_k^t; x^t, y^t)
    ICS_i = ||G - G'||_2,  and the cosine cos(G, G')

(the same batch for both; layers 1..i-1 moved by the update the optimizer makes at t:
-lr g for gradient descent, -lr (momentum buf + g) for momentum SGD).
``internal_covariate_shift`` (measures.py) computes both for every layer with weights.

Version 3 (docs/experiments/ics.md): the papers' architecture family, each net trained
with and without BN from the same data, initial weights, batch order and measurement
rows: Santurkar's 25-layer deep linear network (full-batch gradient descent, lr 1e-6 and
1e-7: the paper's own set-up), a Conv1d BN network on MNIST-1D and a Conv2d BN network
on the 8x8 digits (softmax cross-entropy, momentum SGD; problems.py). Ten seeds (data, initial weights, batch
order); the rule judges one number per seed and configuration, never checkpoints. The
curvature control: the top Hessian eigenvalue of the train-mode loss along every run
against the stability threshold (edge of stability).
"""

import math
import warnings

import numpy as np

from . import stats
from ..curvature import top_eigenvalues
from .measures import (downsample, edge_of_stability, finite_or_none,
                       internal_covariate_shift, matched_loss, stability_threshold)
from .problems import build, paired_tasks, recipe, recipe_optimizer
from .result import Verdict, combine
from ..executors import one_blas_thread
from .spec import Experiment, derived_seed
from ..nn import SGD, TrainingDiverged, train

__all__ = ["EXPERIMENT"]

#: The compared configurations: the BN layer's norm (None: no BN).
CONFIGS = {"standard": None, "bn": "std"}
#: The judged problems (the DLN at each of its learning rates is a condition; each CNN
#: is one).
JUDGED_PROBLEMS = ("dln", "mnist1d", "digits-images")
#: The reduced stand-ins for the paper's VGG on CIFAR-10: a refutation from these alone
#: reads "refuted in" them.
REDUCED = ("mnist1d", "digits-images")
REDUCED_SETTING = ("the small CNNs (MNIST-1D Conv1d, digits Conv2d; cross-entropy, "
                   "momentum SGD)")
SETTINGS = {"dln": "the 25-layer deep linear network",
            "mnist1d": "the MNIST-1D Conv1d network",
            "digits-images": "the digits Conv2d network"}

#: Version 3's parameters (the single source of the full run; hashed with the rule's
#: text). Per problem: lr (the DLN: learning_rates, one condition each), momentum (0:
#: plain (S)GD), batch_size (None: full batch; else the ICS batch too), steps, every
#: (ICS checkpoint spacing), record_every (learning-set loss), sharpness_every (the
#: top Hessian eigenvalue, a multiple of every), sharpness_rows (None: the whole
#: learning set; an int: a fixed random subset per seed).
RULE_PARAMS = {
    "seeds": 10, "alpha": 0.05,
    "cosine_margin": 0.05, "loss_margin": 0.05,
    "window": "the whole run: ICS checkpoints at steps 0..steps, loss records at 0 < "
              "step <= steps",
    "per_seed_cosine": "median of cos(G, G') over the window's checkpoints and layers "
                       "2..k",
    "per_seed_speed": "mean over the window's loss records of ln(L_BN / L_standard)",
    "judged_problems": list(JUDGED_PROBLEMS),
    "lanczos_steps": 20,
    "edge_band_low": 0.9, "edge_checkpoint_share": 0.5, "edge_seed_share": 0.5,
    "matched_loss_levels": 5,
    "dln": {"learning_rates": [1e-6, 1e-7], "momentum": 0.0, "batch_size": None,
            "steps": 10_000, "every": 500, "record_every": 25, "sharpness_every": 1000,
            "sharpness_rows": None},
    "mnist1d": {"lr": 0.05, "momentum": 0.9, "batch_size": 100, "steps": 4000,
                "every": 200, "record_every": 50, "sharpness_every": 400,
                "sharpness_rows": 128},
    "digits-images": {"lr": 0.05, "momentum": 0.9, "batch_size": 100, "steps": 1000,
                      "every": 50, "record_every": 25, "sharpness_every": 100,
                      "sharpness_rows": 128},
}
#: Quick runs: the same code with these numbers (not the experiment's verdict).
QUICK = {"seeds": 3, "lanczos_steps": 10,
         "dln": {"steps": 400, "every": 100, "sharpness_every": 200},
         "mnist1d": {"steps": 300, "every": 60, "record_every": 20, "sharpness_every": 120,
                     "sharpness_rows": 64},
         "digits-images": {"steps": 150, "every": 30, "record_every": 10,
                           "sharpness_every": 60, "sharpness_rows": 64}}
#: The alternative summaries of the fragility line: name -> (window, statistic,
#: matching, test, edge). window: "all", "early" (steps <= half the run) or "late"
#: (steps >= half); statistic of the cosines per seed; matching "step" or "loss"; test
#: across seeds "t" (the t interval) or "sign"; edge: "keep" or "drop" the conditions
#: at the edge of stability.
ALTERNATIVES = {
    "early window (first half of the run)": ("early", "median", "step", "t", "keep"),
    "late window (second half of the run)": ("late", "median", "step", "t", "keep"),
    "mean instead of median over checkpoints and layers":
        ("all", "mean", "step", "t", "keep"),
    "matched loss instead of matched step": ("all", "median", "loss", "t", "keep"),
    "sign test instead of the t interval": ("all", "median", "step", "sign", "keep"),
    "conditions at the edge of stability left out": ("all", "median", "step", "t", "drop"),
}
PRIMARY = ("all", "median", "step", "t", "keep")

CLAIM = ("\"BatchNorm might not even be reducing internal covariate shift\": measured as "
         "the change of a layer's gradient when the preceding layers are updated "
         "(Definition 2.1), networks with BatchNorm show similar or even worse internal "
         "covariate shift than networks without it, despite training faster (for the "
         "deep linear network, the BatchNorm network's G and G' are almost "
         "uncorrelated).")
SOURCE = ("Santurkar, Tsipras, Ilyas, Madry, \"How Does Batch Normalization Help "
          "Optimization?\", NeurIPS 2018 (arXiv:1805.11604), section 2.2, Definition 2.1, "
          "Figure 5; appendix A (the 25-layer deep linear network)")
RULE = (
    "Conditions: the 25-layer deep linear network (full-batch gradient descent on the "
    "summed squared loss, 10,000 steps) at lr 1e-6 and at lr 1e-7 (two conditions: the "
    "paper's own set-up), the MNIST-1D Conv1d network (4000 steps) and the digits Conv2d "
    "network (1000 steps) (softmax cross-entropy, momentum SGD 0.9, lr 0.05, batch 100: "
    "small stand-ins for the paper's VGG on CIFAR-10). ICS (Definition 2.1, every layer with weights) at "
    "checkpoints every 500 (DLN), 200 (MNIST-1D) and 50 (digits) steps from step 0, for "
    "the update the optimizer makes there (-lr g; with momentum -lr (0.9 buf + g)), on "
    "the whole learning set (DLN) or a batch of 100 learning rows drawn per checkpoint "
    "(CNNs). BN and standard nets share each seed's data, initial weights, batch order "
    "and measurement rows; 10 seeds; the window, fixed in advance, is the whole run. "
    "Per seed: C = the median of cos(G, G') over the window's checkpoints and layers "
    "2..k (layer 1 has G' = G) for each net, d = C_BN - C_standard; and r = the mean "
    "over the window's loss records (learning-set loss, steps > 0) of ln(L_BN / "
    "L_standard) (a net that diverged alone makes r +inf for BN, -inf for the standard "
    "net; seeds where both diverged are left out). Across seeds, with the 90% t "
    "interval of the mean (one-sided tests at 0.05; with an infinite value, the side "
    "every seed is on, else undecided): (a) 'BN does not reduce ICS' is supported if "
    "the interval of d lies below +0.05 (BN's cosine higher by less than 0.05, or "
    "lower), refuted if it lies above +0.05 (BN reduces ICS by more than 0.05 in "
    "cosine); (b) 'BN trains faster' is supported if the interval of r lies below "
    "ln 0.95 (BN's loss at least 5% lower at matched steps), refuted if above ln 0.95; "
    "else each is undecided. A condition supports the claim if (a) and (b) do, refutes "
    "it if (a) or (b) refutes, else is undecided. Verdict (result.combine over the four "
    "conditions): supported (refuted) if every condition supports (refutes), mixed if "
    "one supports and another refutes (naming which), else underpowered; if no "
    "condition supports, no DLN condition refutes and both CNN conditions refute, the "
    "verdict is 'refuted in the small CNNs'. Curvature control, reported with the "
    "verdict: the largest eigenvalue of the Hessian of the train-mode loss (Lanczos, "
    "tol 1e-3, at most 20 Hessian-vector products; the DLN's whole learning set, 128 "
    "fixed learning rows per seed on the CNNs) every 1000 (DLN), 400 (MNIST-1D) and 100 (digits) steps against the "
    "stability threshold (2 / lr; (2 + 2 momentum) / lr with momentum); a configuration "
    "sits at the edge of stability in a condition when, in at least half its seeds, at "
    "least half its records after step 0 are >= 0.9 x the threshold; ICS judged there "
    "measures where gradient descent settles, and the report names those conditions. "
    "The l2 distance ||G - G'|| is reported per layer (its scale differs between the "
    "nets), not judged. Fragility: the same rule over the first half of the run and "
    "over the second half, with the mean instead of the median over checkpoints and "
    "layers, at matched loss instead of matched step (per seed, 5 loss levels spaced "
    "geometrically from the smaller of the two nets' step-0 losses to the larger of "
    "their lowest losses; C over the checkpoints nearest to where each net first "
    "reaches each level, r the mean over the levels below the first of ln(steps_BN / "
    "steps_standard)), with the exact one-sided sign test across seeds of d - 0.05 and "
    "of r - ln 0.95 (p < 0.05) instead of the t interval, and with the conditions at the "
    "edge of stability left out.")


# --------------------------------------------------------------------------- set-up

def settings(quick):
    """The set-up: quick and full differ in lengths, checkpoints, rows and seeds only
    (RULE_PARAMS, QUICK). Per problem a dict for problems.build and the training loop
    (the DLN's and the MLP's network options, the CNNs' recipes)."""
    def setup(problem):
        values = {key: (list(v) if isinstance(v, list) else v)
                  for key, v in RULE_PARAMS[problem].items()}
        if quick:
            values.update(QUICK[problem])
        return values

    seeds = QUICK["seeds"] if quick else RULE_PARAMS["seeds"]
    lanczos = QUICK["lanczos_steps"] if quick else RULE_PARAMS["lanczos_steps"]
    dln = {"depth": 25, "width": 10, "samples": 1000, "loss": "sum", **setup("dln")}
    mnist1d = {**recipe("mnist1d", quick), **setup("mnist1d"), "data": "default"}
    digits_images = {**recipe("digits-images", quick), **setup("digits-images")}
    for name, s in (("dln", dln), ("mnist1d", mnist1d), ("digits-images", digits_images)):
        if s["steps"] % s["every"] or s["every"] % s["record_every"] \
                or s["sharpness_every"] % s["every"]:
            raise ValueError(f"{name}: every must divide steps, be a multiple of "
                             "record_every and divide sharpness_every")
    reduced = [
        "the paper's VGG on CIFAR-10 replaced by two CPU-sized convolutional BN networks "
        "of its family (cross-entropy, momentum SGD 0.9, lr 0.05, batch 100): MNIST-1D "
        f"Conv1d, {mnist1d['steps']} steps, and digits Conv2d, {digits_images['steps']} "
        "steps (problems.RECIPES); MNIST-1D is one data set (the package's default), so "
        "its seeds draw the initial weights, the batch order and the measurement rows; "
        "the digits' seeds also draw the train/test split",
        f"ICS at checkpoints (every {dln['every']} DLN, {mnist1d['every']} MNIST-1D, "
        f"{digits_images['every']} digits steps), not at every step; on SGD, on a batch "
        "of the recipe's size drawn at each checkpoint (not the batch of that step)",
        f"the top Hessian eigenvalue every {dln['sharpness_every']} DLN, "
        f"{mnist1d['sharpness_every']} MNIST-1D and {digits_images['sharpness_every']} "
        f"digits steps, by at most {lanczos} Lanczos steps; on the CNNs on "
        f"{mnist1d['sharpness_rows']} fixed learning rows per seed, not the whole "
        "learning set (a record on MNIST-1D's 4000 rows costs ~3.5 s; 128 rows ~0.1 s)",
        f"{seeds} seeds (data, initial weights, batch order) per condition, where the "
        "paper shows one run" + (" (quick: too few seeds to decide)" if quick else ""),
        "the dense digits MLP of versions 1-2 is not run (the budget: ~10 minutes on 2 "
        "cores for the whole run, of which the DLN takes ~2/3)",
    ]
    if quick:
        reduced.insert(0, f"quick: {dln['steps']} of the paper's 10,000 DLN steps; the "
                          "CNNs' quick recipes (for tests and CI)")
    return {"dln": dln, "mnist1d": mnist1d, "digits-images": digits_images,
            "problems": list(JUDGED_PROBLEMS), "seeds": seeds, "lanczos_steps": lanczos,
            "cosine_margin": RULE_PARAMS["cosine_margin"],
            "loss_margin": RULE_PARAMS["loss_margin"], "alpha": RULE_PARAMS["alpha"],
            "learning_rate_note": (
                "the DLN's 1e-6 and 1e-7 are for the loss summed over the 1000 samples "
                "(the engine's 'sum'): averaged over all 1e4 entries they would be 1e4 "
                "times smaller and the nets would not move in 1e4 steps; at lr 1e-5 "
                "the standard net diverges within 20 steps (the BN net does not); at "
                "initialisation the top Hessian eigenvalue is 0.1-2 x 2e6 = 2 / 1e-6 "
                "for the standard net and 3-16 x for the BN net (4 seeds)"),
            "reduced": reduced}


def conditions(settings):
    """The conditions in order: {name: (problem, lr)}; the DLN has one per learning rate
    ("dln lr=1e-06"), every other problem one at its recipe's lr (named by the
    problem)."""
    out = {}
    for problem in settings["problems"]:
        setup = settings[problem]
        if problem == "dln":
            for lr in setup["learning_rates"]:
                out[f"dln lr={lr:g}"] = (problem, lr)
        else:
            out[problem] = (problem, setup["lr"])
    return out


def tasks(settings, seed):
    """One task per (condition, seed index, configuration); BN and standard of a seed
    share data, initial weights, batch order and measurement rows (and the DLN's two
    learning rates share a seed's data and initial weights). The DLN first: its runs
    are the longest."""
    out = []
    for condition, (problem, lr) in conditions(settings).items():
        out += paired_tasks(settings, seed, CONFIGS, problems=(problem,),
                            condition=condition, lr=lr,
                            lanczos_steps=settings["lanczos_steps"])
    return out


def _rows(X, y, count, seed):
    """``count`` rows of (X, y) drawn without replacement from default_rng(seed); all
    rows (X, y themselves) for count None."""
    if count is None:
        return X, y
    rows = np.random.default_rng(seed).choice(len(X), count, replace=False)
    return X[rows], y[rows]


def sharpness(net, X, y, steps, seed):
    """The largest (algebraic) eigenvalue of the Hessian of the train-mode loss on
    (X, y) at net.params: bnfast.curvature.top_eigenvalues (Lanczos with full
    reorthogonalisation) to tol 1e-3 or at most ``steps`` Hessian-vector products (not
    converging is not an error here: the Ritz value after ``steps`` products is within
    a few tenths of a percent on these nets). Unlike power iteration it cannot return a
    large negative eigenvalue instead (BN nets at initialisation have them). None where
    it is not finite (an overflowing Hessian-vector product)."""
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # not converged in `steps`
        try:
            pairs = top_eigenvalues(net, X, y, k=1, which="largest", tol=1e-3,
                                    max_iter=steps, seed=seed, progress=False)
        except (ValueError, FloatingPointError) as exc:
            if "finite" not in str(exc):
                raise
            return None
    value = float(pairs.eigenvalues[0])
    return value if np.isfinite(value) else None


def optimizer_step(net, X, y, lr, optimizer, state):
    """The update the optimizer makes from net.params on the batch (X, y): -lr g for
    plain gradient descent; for PyTorch's momentum SGD (optimizer a bnfast.SGD with
    momentum, state the OptimizerState after the previous steps, None before the
    first) -lr (momentum buf + g), or -lr g at the first update (buf starts as g);
    g includes weight_decay * params. Returns float64 (num_params,)."""
    g = net.gradient(X, y)
    momentum = getattr(optimizer, "momentum", 0.0)
    decay = getattr(optimizer, "weight_decay", 0.0)
    if decay:
        g = g + decay * net.params
    if momentum and state is not None and state.updates > 0:
        g = momentum * np.asarray(state.buffers)[0] + g
    return -lr * g


def run_task(task):
    """Trains one net in segments between ICS checkpoints (steps 0, every, ..., steps);
    at each checkpoint the ICS of every layer with weights for the optimizer's update
    there (optimizer_step, on the whole learning set or a batch of batch_size rows
    drawn for that checkpoint), and at every sharpness_every steps the top Hessian
    eigenvalue of the train-mode loss on the sharpness rows. Returns a JSON-able dict:
    condition, config, replicate; checkpoint_steps (c,), l2 and cosine (c, k) (None
    where not finite); sharpness_steps (s,), sharpness (s,) (None where not finite);
    loss_steps (r,), losses (r,) (the learning-set loss, every record_every steps);
    diverged_at (None, or the step at which the loss or the parameters became
    non-finite; training stops there)."""
    with one_blas_thread():
        return _run_task(task)


def _run_task(task):
    setup, lr = task["setup"], task["lr"]
    net, X, y, _ = build(task)
    optimizer = recipe_optimizer(setup) if setup.get("momentum") else SGD()
    X_sharp, y_sharp = _rows(X, y, setup["sharpness_rows"], derived_seed(task["seed"], 3))
    every, record = setup["every"], setup["record_every"]
    out = {"condition": task["condition"], "problem": task["problem"],
           "config": task["config"], "replicate": task["replicate"],
           "checkpoint_steps": [], "l2": [], "cosine": [], "sharpness_steps": [],
           "sharpness": [], "loss_steps": [0], "losses": [float(net.loss(X, y))],
           "diverged_at": None}
    state = None
    for step in range(0, setup["steps"] + 1, every):
        X_ics, y_ics = _rows(X, y, setup["batch_size"], derived_seed(task["seed"], 4, step))
        l2, cosine = internal_covariate_shift(
            net, X_ics, y_ics, optimizer_step(net, X_ics, y_ics, lr, optimizer, state))
        out["checkpoint_steps"].append(step)
        out["l2"].append(finite_or_none(l2))
        out["cosine"].append(finite_or_none(cosine))
        if step % setup["sharpness_every"] == 0:
            out["sharpness_steps"].append(step)
            out["sharpness"].append(sharpness(net, X_sharp, y_sharp, task["lanczos_steps"],
                                              derived_seed(task["seed"], 5, step)))
        if step == setup["steps"]:
            break
        try:
            result = train(net, X, y, lr, every, batch_size=setup["batch_size"],
                           seed=derived_seed(task["seed"], 6, step), record_every=record,
                           optimizer=optimizer, optimizer_state=state)
        except TrainingDiverged as exc:
            out["diverged_at"] = step + int(exc.step)
            break
        state = result.optimizer_state
        # each segment records its start (the last one's end) and its end
        out["loss_steps"] += [step + record * j for j in range(1, len(result.losses))]
        out["losses"] += [float(v) for v in result.losses[1:]]
    return out


# --------------------------------------------------------------------------- per seed

def _limits(steps, window):
    """(low, high) steps of a window: "all" [0, steps], "early" [0, steps / 2], "late"
    [steps / 2, steps]."""
    return {"all": (0, steps), "early": (0, steps / 2), "late": (steps / 2, steps)}[window]


def seed_cosine(run, steps, window="all", statistic="median"):
    """One net's C for one seed: the median (or mean) of cos(G, G') over its
    checkpoints in the window and layers 2..k (None entries ignored); None if there is
    none."""
    low, high = _limits(steps, window)
    values = [c for s, row in zip(run["checkpoint_steps"], run["cosine"])
              if low <= s <= high for c in row[1:] if c is not None]
    if not values:
        return None
    return float(np.median(values) if statistic == "median" else np.mean(values))


def seed_speed(standard, bn, steps, window="all"):
    """r for one seed: the mean over the loss records at 0 < step in the window of
    ln(L_BN / L_standard); +inf if BN diverged and the standard net did not, -inf for
    the reverse, None if both diverged or no record is left."""
    if standard["diverged_at"] is not None or bn["diverged_at"] is not None:
        if standard["diverged_at"] is not None and bn["diverged_at"] is not None:
            return None
        return math.inf if bn["diverged_at"] is not None else -math.inf
    low, high = _limits(steps, window)
    a = dict(zip(standard["loss_steps"], standard["losses"]))
    b = dict(zip(bn["loss_steps"], bn["losses"]))
    logs = [math.log(b[s] / a[s]) for s in a if s in b and 0 < s and low <= s <= high
            and a[s] > 0 and b[s] > 0]
    return float(np.mean(logs)) if logs else None


def seed_matched(standard, bn, record_every, statistic="median", levels=None):
    """(C_standard, C_BN, r) of one seed at matched loss (measures.matched_loss):
    ``levels`` (default RULE_PARAMS["matched_loss_levels"]) loss levels spaced
    geometrically from the smaller of the two step-0 losses to the larger of the two
    lowest losses; C per net the median (or mean) of cos(G, G') (layers 2..k) over the
    checkpoints nearest to where it first reaches each level; r the mean over the
    levels below the first of ln(steps_BN / steps_standard) (steps at least
    record_every). A net that diverged alone: r = +-inf as seed_speed, C from its
    checkpoints before it diverged; (None, None, None) when the curves do not fall."""
    levels = RULE_PARAMS["matched_loss_levels"] if levels is None else levels
    if standard["diverged_at"] is not None or bn["diverged_at"] is not None:
        r = seed_speed(standard, bn, 0)
        return (seed_cosine(standard, math.inf, "all", statistic),
                seed_cosine(bn, math.inf, "all", statistic), r)

    def ckpts(run):
        return (run["checkpoint_steps"],
                [[np.nan if c is None else c for c in row] for row in run["cosine"]])
    try:
        matched = matched_loss(standard["losses"], bn["losses"], count=levels,
                               record_every=record_every, checkpoints_a=ckpts(standard),
                               checkpoints_b=ckpts(bn))
    except ValueError:
        return None, None, None

    def cosine(at):
        values = [c for point in at if point is not None for c in point["value"][1:]
                  if c is not None]
        if not values:
            return None
        return float(np.median(values) if statistic == "median" else np.mean(values))
    pairs = list(zip(matched["steps_a"], matched["steps_b"]))[1:]
    logs = [math.log(max(b, record_every) / max(a, record_every)) for a, b in pairs]
    return cosine(matched["at_a"]), cosine(matched["at_b"]), \
        (float(np.mean(logs)) if logs else None)


# --------------------------------------------------------------------------- rule

def side(values, threshold, alpha=None, test="t"):
    """Which side of ``threshold`` the per-seed ``values`` lie on (None entries left
    out): "below", "above" or "undecided". test "t": the (1 - 2 alpha) t interval of the
    mean lies below (above) the threshold (one-sided t tests at alpha); with an infinite
    value, every seed below (above) it, else undecided; fewer than 2 seeds: undecided.
    test "sign": the exact one-sided sign test of value - threshold (p < alpha)."""
    alpha = RULE_PARAMS["alpha"] if alpha is None else alpha
    values = [float(v) for v in values if v is not None]
    if test == "sign":
        result = stats.sign_test([v - threshold for v in values])
        return ("below" if result["p_less"] < alpha else
                "above" if result["p_greater"] < alpha else "undecided")
    if len(values) < 2:
        return "undecided"
    if not all(math.isfinite(v) for v in values):
        return ("below" if all(v < threshold for v in values) else
                "above" if all(v > threshold for v in values) else "undecided")
    interval = stats.t_interval(values, 1.0 - 2.0 * alpha)
    return ("below" if interval["high"] < threshold else
            "above" if interval["low"] > threshold else "undecided")


def judge_condition(differences, speeds, cosine_margin=None, loss_margin=None,
                    alpha=None, test="t"):
    """The rule on one condition. differences : per-seed d = C_BN - C_standard (None:
    no value); speeds : per-seed r (mean ln(L_BN / L_standard); +-inf for a net that
    diverged alone; None: no value). Returns (outcome, ics, speed): outcome
    "supported" ((a) and (b) supported), "refuted" ((a) or (b) refuted) or
    "undecided"; ics and speed the sub-claims' outcomes."""
    cosine_margin = RULE_PARAMS["cosine_margin"] if cosine_margin is None else cosine_margin
    loss_margin = RULE_PARAMS["loss_margin"] if loss_margin is None else loss_margin
    ics = {"below": "supported", "above": "refuted"}.get(
        side(differences, cosine_margin, alpha, test), "undecided")
    speed = {"below": "supported", "above": "refuted"}.get(
        side(speeds, math.log(1.0 - loss_margin), alpha, test), "undecided")
    if ics == "supported" and speed == "supported":
        return "supported", ics, speed
    if "refuted" in (ics, speed):
        return "refuted", ics, speed
    return "undecided", ics, speed


def verdict_of(outcomes, at_edge=()):
    """Version 3's mapping over the conditions {name: outcome} (result.combine); if no
    condition supports, no DLN condition refutes and every CNN condition refutes,
    "refuted in the small CNNs". at_edge : the conditions at the edge of stability
    (named in what would decide an underpowered verdict)."""
    cnn = {k: v for k, v in outcomes.items() if not k.startswith("dln")}
    dln = {k: v for k, v in outcomes.items() if k.startswith("dln")}
    undecided = [k for k, v in outcomes.items() if v not in ("supported", "refuted")]
    decide = "more seeds at " + (", ".join(
        f"{k} (at the edge of stability)" if k in at_edge else k for k in undecided)
        or "the undecided conditions")
    if cnn and dln and all(v == "refuted" for v in cnn.values()) and \
            "supported" not in outcomes.values() and "refuted" not in dln.values():
        return Verdict("refuted", setting=REDUCED_SETTING, reduced=True, conditions={
            k: v if v in ("supported", "refuted") else "undecided"
            for k, v in outcomes.items()})
    setting = " and ".join(dict.fromkeys(SETTINGS[k.split(" ")[0]] for k in outcomes))
    return combine(outcomes, setting or "no condition", decide=decide)


def edge_status(runs, setup, lr):
    """The curvature control of one condition: per configuration, each seed's share of
    sharpness records after step 0 at or above RULE_PARAMS["edge_band_low"] x the
    stability threshold (measures.edge_of_stability; an overflowed record counts as
    above), its largest and last ratio, and whether the configuration sits at the edge
    (the share >= RULE_PARAMS["edge_checkpoint_share"] in at least
    RULE_PARAMS["edge_seed_share"] of its seeds)."""
    momentum = setup.get("momentum", 0.0)
    out = {"threshold": stability_threshold(lr, momentum)}
    for config, config_runs in runs.items():
        shares, maxima, finals = [], [], []
        for run in config_runs:
            points = [(s, math.inf if v is None else v)
                      for s, v in zip(run["sharpness_steps"], run["sharpness"]) if s > 0]
            if not points:
                shares.append(None), maxima.append(None), finals.append(None)
                continue
            steps, values = (np.array(v) for v in zip(*points))
            eos = edge_of_stability((steps, values.astype(np.float64)), lr, momentum)
            ratios = np.array([math.inf if r is None else r for r in eos["ratios"]])
            shares.append(float(np.mean(ratios >= RULE_PARAMS["edge_band_low"])))
            maxima.append(eos["max_ratio"])
            finals.append(eos["final_ratio"])
        at_edge = sum(s is not None and s >= RULE_PARAMS["edge_checkpoint_share"]
                      for s in shares)
        out[config] = {"seed_edge_share": shares, "seed_max_ratio": maxima,
                       "seed_final_ratio": finals, "seeds_at_edge": int(at_edge),
                       "seeds": len(config_runs),
                       "at_edge": bool(config_runs) and
                       at_edge >= RULE_PARAMS["edge_seed_share"] * len(config_runs)}
    return out


def _per_seed(runs, setup, window, statistic, matching):
    """Per seed (C_standard, C_BN, d, r) of one condition under a summary."""
    rows = []
    for standard, bn in zip(runs["standard"], runs["bn"]):
        if matching == "loss":
            c_std, c_bn, r = seed_matched(standard, bn, setup["record_every"], statistic)
        else:
            c_std = seed_cosine(standard, setup["steps"], window, statistic)
            c_bn = seed_cosine(bn, setup["steps"], window, statistic)
            r = seed_speed(standard, bn, setup["steps"], window)
        d = None if c_std is None or c_bn is None else c_bn - c_std
        rows.append((c_std, c_bn, d, r))
    return rows


def _interval(values, alpha):
    """The mean of the per-seed values (None left out) and its (1 - 2 alpha) t
    interval; all None when a value is infinite (a net diverged alone) or none is
    left."""
    values = [v for v in values if v is not None]
    if not values or not all(math.isfinite(v) for v in values):
        return {"n": len(values), "mean": None, "low": None, "high": None}
    t = stats.t_interval(values, 1.0 - 2.0 * alpha)
    return {key: t[key] for key in ("n", "mean", "low", "high")}


def conclude(settings, results):
    """Groups the runs by condition and configuration (seeds in order), applies the
    rule per condition and under each alternative summary, and adds the curvature
    controls and the curves of the figure. Returns (Verdict, measurements)."""
    alpha = settings.get("alpha", RULE_PARAMS["alpha"])
    cosine_margin = settings.get("cosine_margin", RULE_PARAMS["cosine_margin"])
    loss_margin = settings.get("loss_margin", RULE_PARAMS["loss_margin"])
    by_key = {(r["condition"], r["replicate"], r["config"]): r for r in results}
    verdict_inputs, blocks, outcomes = {}, {}, {}
    alternative_outcomes = {name: {} for name in ALTERNATIVES}
    for condition, (problem, lr) in conditions(settings).items():
        setup = settings[problem]
        runs = {config: [by_key[(condition, r, config)] for r in range(settings["seeds"])]
                for config in CONFIGS}
        edge = edge_status(runs, setup, lr)
        at_edge = [config for config in CONFIGS if edge[config]["at_edge"]]
        summaries = {}
        for name, (window, statistic, matching, test, drop) in \
                {"rule": PRIMARY, **ALTERNATIVES}.items():
            key = (window, statistic, matching)
            if key not in summaries:
                summaries[key] = _per_seed(runs, setup, window, statistic, matching)
            rows = summaries[key]
            outcome, ics, speed = judge_condition([r[2] for r in rows], [r[3] for r in rows],
                                                  cosine_margin, loss_margin, alpha, test)
            if name == "rule":
                primary = (outcome, ics, speed, rows)
            elif not (drop == "drop" and at_edge):
                alternative_outcomes[name][condition] = outcome
        outcome, ics, speed, rows = primary
        outcomes[condition] = outcome
        differences, speeds = [r[2] for r in rows], [r[3] for r in rows]
        verdict_inputs[condition] = {
            "per_seed_cosine_standard": [r[0] for r in rows],
            "per_seed_cosine_bn": [r[1] for r in rows],
            "per_seed_cosine_difference": differences,
            "per_seed_log_loss_ratio": [None if v is None or not math.isfinite(v) else v
                                        for v in speeds],
            "seeds_diverged": {config: sum(r["diverged_at"] is not None
                                           for r in runs[config]) for config in CONFIGS},
            "median_cosine_standard": _median([r[0] for r in rows]),
            "median_cosine_bn": _median([r[1] for r in rows]),
            "cosine_difference": _interval(differences, alpha),
            "log_loss_ratio": _interval(speeds, alpha),
            "ics_outcome": ics, "speed_outcome": speed, "outcome": outcome,
            "at_edge_of_stability": at_edge}
        blocks[condition] = {"problem": problem, "lr": lr,
                             "momentum": setup.get("momentum", 0.0),
                             "steps": setup["steps"],
                             "setting": SETTINGS[problem], "curvature": edge,
                             "l2": _l2_summary(runs),
                             "curves": {config: _curves(runs[config], edge["threshold"])
                                        for config in CONFIGS}}
    alternatives = {name: verdict_of(alt).label
                    for name, alt in alternative_outcomes.items()}
    edge_conditions = [c for c, v in verdict_inputs.items() if v["at_edge_of_stability"]]
    measurements = {"conditions": blocks, "verdict_inputs": verdict_inputs,
                    "outcomes": outcomes, "alternatives": alternatives,
                    "alternative_outcomes": alternative_outcomes,
                    "alpha": alpha, "cosine_margin": cosine_margin,
                    "loss_margin": loss_margin}
    return verdict_of(outcomes, edge_conditions), measurements


def _median(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(values)) if values else None


def _l2_summary(runs):
    """Per configuration, the per-seed median of ||G - G'|| over checkpoints and layers
    2..k, and the geometric mean over seeds of BN / standard (reported, not judged)."""
    out = {}
    for config, config_runs in runs.items():
        out[config] = [_median([v for row in run["l2"] for v in row[1:]])
                       for run in config_runs]
    logs = [math.log(b / a) for a, b in zip(out["standard"], out["bn"])
            if a is not None and b is not None and a > 0 and b > 0]
    out["geometric_mean_ratio_bn_over_standard"] = (float(np.exp(np.mean(logs)))
                                                    if logs else None)
    return out


def _nanquantiles(rows, qs):
    """Per column of rows (seeds, points) with NaN for missing, the quantiles qs over
    the finite entries (None for a column with none)."""
    rows = np.asarray(rows, dtype=np.float64)
    out = []
    for q in qs:
        column = []
        for values in rows.T:
            finite = values[np.isfinite(values)]
            column.append(float(np.quantile(finite, q)) if finite.size else None)
        out.append(column)
    return out


def _stack(runs, steps_key, values_key, steps):
    """(seeds, len(steps)) of a per-run series at the given steps (NaN where a run has
    none: it diverged earlier, or the value was not finite)."""
    rows = []
    for run in runs:
        at = dict(zip(run[steps_key], run[values_key]))
        rows.append([np.nan if at.get(s) is None else at[s] for s in steps])
    return np.asarray(rows, dtype=np.float64)


def _curves(runs, threshold):
    """A configuration's curves over seeds for the figure and the report: the loss
    (median, min and max over seeds, downsampled to <= 200 steps), cos(G, G') and
    ||G - G'|| per checkpoint and layer (median over seeds), the per-layer median over
    checkpoints and seeds, and the sharpness / threshold per seed."""
    loss_steps = max((run["loss_steps"] for run in runs), key=len)
    index = sorted({int(i) for i in downsample(np.arange(len(loss_steps)))})
    loss_steps = [loss_steps[i] for i in index]
    median, low, high = _nanquantiles(_stack(runs, "loss_steps", "losses", loss_steps),
                                      (0.5, 0.0, 1.0))
    checkpoint_steps = max((run["checkpoint_steps"] for run in runs), key=len)
    layers = max(len(run["cosine"][0]) for run in runs)
    cubes = {}
    for key in ("cosine", "l2"):
        cube = np.full((len(runs), len(checkpoint_steps), layers), np.nan)
        for i, run in enumerate(runs):
            for j, row in enumerate(run[key]):
                cube[i, j] = [np.nan if v is None else v for v in row]
        cubes[key] = cube
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN slices: None below
        per_checkpoint = {key: np.nanmedian(cube, axis=0) for key, cube in cubes.items()}
        per_layer = {key: np.nanmedian(cube.reshape(-1, layers), axis=0)
                     for key, cube in cubes.items()}
    sharpness_steps = max((run["sharpness_steps"] for run in runs), key=len)
    ratios = _stack(runs, "sharpness_steps", "sharpness", sharpness_steps) / threshold
    return {"loss_steps": loss_steps, "loss_median": median, "loss_min": low,
            "loss_max": high, "checkpoint_steps": checkpoint_steps,
            "cosine_median": [finite_or_none(row) for row in per_checkpoint["cosine"]],
            "l2_median": [finite_or_none(row) for row in per_checkpoint["l2"]],
            "cosine_per_layer": finite_or_none(per_layer["cosine"]),
            "l2_per_layer": finite_or_none(per_layer["l2"]),
            "sharpness_steps": sharpness_steps,
            "sharpness_ratio": [finite_or_none(row) for row in ratios],
            "diverged_at": [run["diverged_at"] for run in runs]}


# --------------------------------------------------------------------------- report

def _num(value, fmt=".3g"):
    return "n/a" if value is None else format(value, fmt)


def _interval_text(entry, fmt=".3g"):
    if entry["mean"] is None:
        return "n/a"
    if entry["low"] is None:
        return f"{entry['mean']:{fmt}}"
    return f"{entry['mean']:{fmt}} [{entry['low']:{fmt}}, {entry['high']:{fmt}}]"


def summary(measurements):
    """The terminal report's lines: per condition, the median C of each net over seeds,
    d and r with their 90% t intervals and the sub-claims' outcomes, the curvature
    control, and the l2 distance (reported)."""
    lines = ["ICS (Definition 2.1) per layer at checkpoints; C = median cos(G, G') over "
             "the run's checkpoints and layers 2..k per seed; d = C_BN - C_standard; r = "
             "mean ln(L_BN / L_standard) over the run; [90% t interval over seeds]"]
    for condition, block in measurements["conditions"].items():
        v = measurements["verdict_inputs"][condition]
        diverged = v["seeds_diverged"]
        lines.append(
            f"  {condition:<14} C standard {_num(v['median_cosine_standard'])}, BN "
            f"{_num(v['median_cosine_bn'])}; d {_interval_text(v['cosine_difference'])}"
            f" -> (a) {v['ics_outcome']}; r {_interval_text(v['log_loss_ratio'])} -> (b) "
            f"{v['speed_outcome']}; {v['outcome']}"
            + (f"; diverged: standard {diverged['standard']}, BN {diverged['bn']} seeds"
               if diverged["standard"] or diverged["bn"] else ""))
        edge = block["curvature"]
        parts = []
        for config in CONFIGS:
            c = edge[config]
            parts.append(f"{config} max {_num(_median(c['seed_max_ratio']))}, last "
                         f"{_num(_median(c['seed_final_ratio']))}, at the edge in "
                         f"{c['seeds_at_edge']}/{c['seeds']} seeds")
        flagged = v["at_edge_of_stability"]
        lines.append(f"  {'':<14} sharpness / threshold ({edge['threshold']:.4g}), median "
                     "over seeds: " + "; ".join(parts)
                     + (f" -> AT THE EDGE OF STABILITY ({', '.join(flagged)})"
                        if flagged else ""))
        l2 = block["l2"]
        lines.append(f"  {'':<14} ||G - G'|| median over seeds: standard "
                     f"{_num(_median(l2['standard']))}, BN {_num(_median(l2['bn']))} "
                     "(reported)")
    return lines


def headline(inputs):
    """The verdict's key figures: per condition the means over seeds of d and r and its
    outcome ("dln 1e-06" for "dln lr=1e-06"); the conditions at the edge of stability."""
    parts, edge = [], []
    for condition, v in inputs.items():
        if not isinstance(v, dict):
            continue
        name = condition.replace(" lr=", " ")
        parts.append(f"{name} {_num(v['cosine_difference']['mean'])}, "
                     f"{_num(v['log_loss_ratio']['mean'])} {v['outcome']}")
        if v["at_edge_of_stability"]:
            edge.append(name)
    text = "d, r: " + "; ".join(parts)
    if edge:
        text += "; at the edge of stability: " + ", ".join(edge)
    return text


TITLE = ("BN does not reduce internal covariate shift, yet trains faster (Santurkar et "
         "al. 2018, Def. 2.1, Fig. 5)")

EXPERIMENT = Experiment(
    name="ics", claim=CLAIM, source=SOURCE, rule=RULE, rule_version=3,
    rule_params=RULE_PARAMS, settings=settings, tasks=tasks, run_task=run_task,
    conclude=conclude, summary=summary, headline=headline, order=1, title=TITLE)
