"""MNIST-1D's benchmark table (Greydanus 2020, "Scaling down deep learning"), reproduced
with bnfast's own networks and native training, with and without BN.

    python docs/experiments/mnist1d_table.py [--seeds 5] [--quick] [--out PATH] [--force]

Trains five configurations on the default MNIST-1D data set (4000 train / 1000 test rows,
generated locally by bnfast.datasets.mnist1d(), which runs the mnist1d package's own
generator): logistic regression; the package's MLP; the MLP with BN; the package's CNN;
the CNN with BN, each over seeds 0..N-1 (the seed draws the initial parameters and the
SGD shuffles; the data set is always the default one). Prints a markdown table (test
accuracy mean +- std over seeds (sample std, ddof=1), min-max, the paper's figure, the
wall time per run) and writes every per-seed number, the settings, the timings, the
bnfast version and the date to docs/experiments/results/mnist1d.json.

An existing results file is never replaced unless --force is given (the run refuses
before training, exit code 1). --quick is a smoke test: 1 seed, 300 steps, and it writes
nowhere unless --out is given. Needs the mnist1d package (pip install 'bnfast[data]').

The recipe is the mnist1d repository's benchmark (notebooks/mnist1d-classification.ipynb
with notebooks/models.py and notebooks/train.py of github.com/greydanus/mnist1d; the
mnist1d wheel on PyPI ships neither file):
- models: LinearBase = Linear(40, 10); MLPBase = Linear(40, 100), ReLU, then
  h + ReLU(Linear(100, 100) h) (a residual block), Linear(100, 10) (hidden_size 100, its
  default: the notebook does not pass get_model_args' 256); ConvBase = three Conv1d with
  25 channels, kernels 5/3/3, stride 2, padding 1, each followed by ReLU (40 -> 19 -> 10
  -> 5 positions), flatten (125), Linear(125, 10). Parameter counts 410, 15210, 5210.
- training: torch.optim.Adam, lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight decay 0;
  mean cross-entropy; batches of 100; 6000 steps (get_model_args() with total_steps set
  to 6000, as the notebook does); the test accuracy after the last step.
- BN rows (not in the paper): BatchNorm after each hidden Dense/Conv1d, before its ReLU
  (PyTorch's BatchNorm1d defaults: learnable gamma = 1, beta = 0, eps 1e-5, momentum
  0.1); the layer keeps its bias, as nn.BatchNorm1d inserted into the package's model
  would; test accuracy in inference mode (running statistics), as PyTorch's eval().
- initialization: PyTorch's default for nn.Linear and nn.Conv1d (Kaiming-uniform with
  a = sqrt(5)), i.e. W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = inputs
  (times the kernel size), set here by hand (bnfast's Network.init has no such scheme),
  drawn from numpy.random.default_rng(seed) layer by layer (W, then b).

Differences from the paper's runs (also in the JSON's "differences_from_paper"): see
DIFFERENCES below.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

#: Where the full run writes its results (relative to this script).
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mnist1d.json"

#: (key, label, the paper's test accuracy in %, or None: not in the paper)
CONFIGS = (
    ("logistic", "Logistic regression", 32),
    ("mlp", "MLP", 68),
    ("mlp_bn", "MLP + BN", None),
    ("cnn", "CNN", 94),
    ("cnn_bn", "CNN + BN", None),
)

#: The package's benchmark recipe (notebooks/train.py get_model_args, notebook overrides).
LEARNING_RATE = 1e-2
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
WEIGHT_DECAY = 0.0
BATCH_SIZE = 100
STEPS = 6000
QUICK_STEPS = 300
HIDDEN = 100
CHANNELS = 25
#: BN as PyTorch's nn.BatchNorm1d defaults.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
#: The full learning-set loss is recorded every this many steps (train mode).
RECORD_EVERY = 1000

DIFFERENCES = [
    "batches: the package walks the 4000 training rows in their stored order, batch k = "
    "rows 100 (k mod 40) .. +100, never reshuffled; bnfast.train draws disjoint batches of "
    "100 from a fresh permutation every epoch (seeded by the run's seed)",
    "steps: the package's loop `for step in range(total_steps + 1)` makes 6001 Adam "
    "updates; here 6000",
    "arithmetic: float64 throughout (bnfast); the package trains in float32 (torch.Tensor)",
    "initialization: PyTorch's default law for Linear/Conv1d, W and b ~ U(-1/sqrt(fan_in), "
    "1/sqrt(fan_in)), reproduced in distribution but drawn from NumPy's default_rng(seed), "
    "not torch's generator (bnfast's Network.init schemes glorot/he/normal differ from it)",
    "seeds: the paper's figures are single runs (set_seed(42)); here seeds 0..N-1 "
    "(initialization and shuffles), mean and spread reported",
    "data: the notebook downloads mnist1d_data.pkl; here the same default data set is "
    "generated locally by the mnist1d package's generator (bnfast.datasets.mnist1d(), equal "
    "to the released pickle to rounding), with the same 4000/1000 split",
    "BN rows: not in the paper; BatchNorm (PyTorch's BatchNorm1d defaults) after each "
    "hidden Dense/Conv1d, before its ReLU; evaluated with running statistics",
    "paper figures: the README/paper table (32%, 68%, 94%) is rounded and comes from the "
    "authors' own runs; the repository's benchmark notebook prints 31.5%, 65.1%, 92.3% "
    "after 6000 steps for its seed 42",
]


def build_layers(key):
    """The layers of configuration ``key`` (a CONFIGS key)."""
    from bnfast import BatchNorm, Dense, Residual
    from bnfast.experiments.problems import mnist1d_cnn_layers

    def bn(on):
        return BatchNorm(eps=BN_EPS, momentum=BN_MOMENTUM) if on else None

    if key == "logistic":
        return [Dense(40, 10)]
    if key in ("mlp", "mlp_bn"):
        on = key == "mlp_bn"
        return [Dense(40, HIDDEN, "relu", batch_norm=bn(on)),
                Residual([Dense(HIDDEN, HIDDEN, "relu", batch_norm=bn(on))]),
                Dense(HIDDEN, 10)]
    if key in ("cnn", "cnn_bn"):
        # the one definition of the MNIST-1D CNN (its BN: BatchNorm's defaults, which
        # are BN_EPS and BN_MOMENTUM)
        return mnist1d_cnn_layers(norm="std" if key == "cnn_bn" else None,
                                  channels=CHANNELS)
    raise ValueError(f"unknown configuration {key!r}")


def pytorch_default_init(net, seed):
    """PyTorch's default law for nn.Linear/nn.Conv1d, W and b ~ U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) from default_rng(seed) layer by layer (W, then b); one definition,
    bnfast.experiments.problems.pytorch_default_init. Returns net."""
    from bnfast.experiments.problems import pytorch_default_init as init

    return init(net, seed)


def run_one(key, seed, data, steps):
    """Trains configuration ``key`` from seed ``seed``; returns its measurements."""
    import bnfast

    X_train, y_train, X_test, y_test = data
    if not key.startswith("cnn"):                 # Dense networks take (m, 40)
        X_train = X_train.reshape(len(X_train), -1)
        X_test = X_test.reshape(len(X_test), -1)
    net = pytorch_default_init(
        bnfast.Network(build_layers(key), loss="cross_entropy"), seed)
    optimizer = bnfast.Adam(betas=BETAS, eps=ADAM_EPS, weight_decay=WEIGHT_DECAY)
    start = time.perf_counter()
    result = bnfast.train(net, X_train, y_train, lr=LEARNING_RATE, steps=steps,
                          batch_size=BATCH_SIZE, seed=seed, optimizer=optimizer,
                          record_every=min(RECORD_EVERY, max(steps, 1)))
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    test_accuracy = net.accuracy(X_test, y_test)
    train_accuracy = net.accuracy(X_train, y_train)
    eval_seconds = time.perf_counter() - start
    return {"seed": seed, "test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "train_seconds": seconds, "eval_seconds": eval_seconds,
            "steps": int(result.steps),
            "train_losses": [float(v) for v in result.losses],
            "num_params": int(net.num_params), "network": repr(net)}


def summarize(runs):
    """mean, sample std (ddof=1; 0 for one run), min and max of the test accuracies,
    and the mean and total training seconds."""
    acc = np.array([r["test_accuracy"] for r in runs])
    secs = np.array([r["train_seconds"] for r in runs])
    return {"test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "test_accuracy_min": float(acc.min()), "test_accuracy_max": float(acc.max()),
            "train_accuracy_mean": float(np.mean([r["train_accuracy"] for r in runs])),
            "train_seconds_mean": float(secs.mean()),
            "train_seconds_total": float(secs.sum())}


def markdown_table(configurations, seeds, threads):
    """The results as a markdown table (accuracies in %)."""
    lines = [f"| model | bnfast test accuracy, mean ± std ({seeds} seed"
             f"{'s' if seeds != 1 else ''}) | min–max | paper | wall time per run "
             f"({threads} cores) |",
             "|---|---|---|---|---|"]
    for c in configurations:
        s = c["summary"]
        paper = "–" if c["paper_test_accuracy"] is None else f"{c['paper_test_accuracy']}%"
        std = f"{100 * s['test_accuracy_std']:.1f}" if len(c["runs"]) > 1 else "n/a"
        secs = s["train_seconds_mean"]
        secs = f"{secs:.1f}" if secs >= 1 else f"{secs:.2f}"
        lines.append(f"| {c['label']} | {100 * s['test_accuracy_mean']:.1f}% ± {std} | "
                     f"{100 * s['test_accuracy_min']:.1f}–{100 * s['test_accuracy_max']:.1f}%"
                     f" | {paper} | {secs} s |")
    return "\n".join(lines)


def _parse(argv):
    p = argparse.ArgumentParser(
        prog="python docs/experiments/mnist1d_table.py",
        description="MNIST-1D's logistic/MLP/CNN table with bnfast, with and without BN.")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds 0..N-1 per configuration (default 5; 1 with --quick)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Adam steps per run (default {STEPS}; {QUICK_STEPS} with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 seed, fewer steps; writes nowhere unless --out")
    p.add_argument("--out", type=Path, default=None,
                   help="results JSON (default docs/experiments/results/mnist1d.json; "
                   "with --quick: none)")
    p.add_argument("--force", action="store_true", help="replace an existing results file")
    p.add_argument("--threads", type=int, default=2, help="bnfast threads (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 5
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else STEPS
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.out is None and not args.quick:
        args.out = DEFAULT_OUT
    return args


def _write(path, results, force):
    """Writes the JSON; without force, never replaces an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, allow_nan=False) + "\n"
    if not force:
        with open(path, "x", encoding="utf-8") as f:    # fails if it appeared meanwhile
            f.write(text)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None):
    args = _parse(argv)
    if args.out is not None and args.out.exists() and not args.force:
        print(f"refusing to overwrite the existing results file {args.out} "
              "(give --force to replace it)", file=sys.stderr)
        return 1

    started = time.perf_counter()
    load_before = os.getloadavg()
    import mnist1d
    from tqdm import tqdm

    import bnfast

    bnfast.set_num_threads(args.threads)
    data_start = time.perf_counter()
    data = bnfast.datasets.mnist1d()                  # the default data set, 4000/1000
    data_seconds = time.perf_counter() - data_start

    seeds = list(range(args.seeds))
    configurations = [{"key": key, "label": label, "paper_test_accuracy": paper, "runs": []}
                      for key, label, paper in CONFIGS]
    with tqdm(total=len(configurations) * len(seeds), desc="mnist1d", unit="run",
              disable=args.no_progress, file=sys.stderr) as bar:
        for c in configurations:
            for seed in seeds:
                bar.set_postfix_str(f"{c['label']}, seed {seed}")
                run = run_one(c["key"], seed, data, args.steps)
                c["runs"].append(run)
                bar.update()
            c["num_params"] = c["runs"][0]["num_params"]
            c["network"] = c["runs"][0]["network"]
            for run in c["runs"]:
                del run["num_params"], run["network"]
            c["summary"] = summarize(c["runs"])
    total = time.perf_counter() - started

    table = markdown_table(configurations, len(seeds), bnfast.get_num_threads())
    heading = ("MNIST-1D (default data set, 4000 train / 1000 test), bnfast "
               f"{bnfast.__version__}: Adam lr {LEARNING_RATE:g}, batch {BATCH_SIZE}, "
               f"{args.steps} steps, seeds 0..{len(seeds) - 1}")
    if args.quick:
        heading += " [--quick smoke test: not the paper's setting]"
    print(heading)
    print()
    print(table)
    print()
    print("accuracies: test accuracy after the last step, mean ± sample std (ddof=1) over "
          "seeds, and min–max; paper: Greydanus 2020 (no BN rows)")
    print(f"total wall time {total:.1f} s ({bnfast.get_num_threads()} threads; data "
          f"generation {data_seconds:.1f} s)")

    if args.out is None:
        return 0
    results = {
        "script": "docs/experiments/mnist1d_table.py",
        "command": " ".join(["python", "docs/experiments/mnist1d_table.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bnfast_version": bnfast.__version__,
        "mnist1d_version": getattr(mnist1d, "__version__", None) or _dist_version("mnist1d"),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "quick": bool(args.quick),
        "settings": {
            "data": "bnfast.datasets.mnist1d() (the mnist1d package's default data set: "
                    "5000 samples, seed 42, 4000 train / 1000 test), X (m, 1, 40) float64; "
                    "Dense networks see it as (m, 40)",
            "seeds": seeds,
            "seed_controls": "the initial parameters and bnfast.train's batch shuffles",
            "steps": args.steps,
            "batch_size": BATCH_SIZE,
            "optimizer": {"name": "Adam", "lr": LEARNING_RATE, "betas": list(BETAS),
                          "eps": ADAM_EPS, "weight_decay": WEIGHT_DECAY},
            "loss": "cross_entropy (mean over the batch)",
            "init": "PyTorch's default for Linear/Conv1d: W, b ~ U(-1/sqrt(fan_in), "
                    "1/sqrt(fan_in)) from numpy default_rng(seed); BN gamma 1, beta 0",
            "batch_norm": {"eps": BN_EPS, "momentum": BN_MOMENTUM, "trainable": True,
                           "where": "after each hidden Dense/Conv1d, before its ReLU"},
            "evaluation": "net.accuracy (inference mode: BN uses running statistics) on "
                          "the 1000 test rows after the last step",
            "train_losses": f"full training-set mean cross-entropy (train mode) before "
                            f"step 0, {RECORD_EVERY}, ... and after the last step",
            "threads": bnfast.get_num_threads(),
            "source_recipe": "github.com/greydanus/mnist1d notebooks/models.py, "
                             "notebooks/train.py (get_model_args), "
                             "notebooks/mnist1d-classification.ipynb (total_steps 6000)",
        },
        "differences_from_paper": DIFFERENCES,
        "configurations": configurations,
        "timings": {"total_seconds": total, "data_seconds": data_seconds,
                    "load_average_before": list(load_before),
                    "load_average_after": list(os.getloadavg()),
                    "cpu_count": os.cpu_count()},
        "table": table,
    }
    try:
        _write(args.out, results, args.force)
    except FileExistsError:
        print(f"refusing to overwrite {args.out}, which appeared during the run (give "
              "--force to replace it)", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


def _dist_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
