"""Prints the error table of docs/math/population_statistics.md ("Three merges side by
side"): bnfast's population statistics, PyTorch SyncBatchNorm's merge, E[x^2] - E[x]^2
and Flax's BatchNorm merge against the exact (fractions) statistics, on the adversarial
cases of bnfast.reference.moments. Takes ~1 minute (10**7-row shards, exact sums).

    python docs/math/population_statistics_table.py [--scale 1.0]
"""

import argparse
import warnings

import numpy as np

import bnfast
from bnfast.reference.moments import METHODS, adversarial_cases, compare_merges


def _cell(entry, method):
    """'mean error / var error' (relative: the mean's to max(|mean|, std))."""
    _, _, mean_err, var_err = entry
    if np.isnan(var_err):   # NaN or inf in the channel's data: every method gives NaN
        return "NaN, reported" if method == "bnfast" else "NaN"
    return f"{mean_err:.1e} / {var_err:.1e}".replace("inf", "inf (var != 0)")


def table(scale):
    lines = []
    for dtype in (np.float64, np.float32):
        lines.append(f"\n{dtype.__name__} data (peers accumulate in "
                     f"{'float64' if dtype is np.float64 else 'float32'}):\n")
        lines.append("| case | ch | exact var | " + " | ".join(METHODS.values()) + " |")
        lines.append("|---|---|---|" + "---|" * len(METHODS))
        for name, shards in adversarial_cases(dtype, scale):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # the NaN case warns
                rows = compare_merges(shards, lambda s: bnfast.population_stats(s))
            for j, row in enumerate(rows):
                exact = "NaN/inf data" if row["exact"] is None else \
                    f"{float(row['exact'][2]):.3g}"
                cells = " | ".join(_cell(row[m], m) for m in METHODS)
                lines.append(f"| {name} | {j} | {exact} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="row counts times this (default 1: the page's table)")
    print(table(parser.parse_args().scale))
