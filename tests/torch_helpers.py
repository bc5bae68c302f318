"""Shared by the torch tests: torch on one thread (tiny tensors: its pool only
costs time), the worst error/bound ratios printed at the end (-s), and the elementwise
check of an error against its rounding bound."""

import contextlib

import numpy as np
import pytest


@contextlib.contextmanager
def single_torch_thread(torch):
    """Tiny tensors: torch's thread pool only costs time (and the cores are shared)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def one_torch_thread_and_report(torch, worst, title):
    with single_torch_thread(torch):
        yield
    if worst:
        print(f"\nworst error / bound against torch ({title}):")
        for what, ratio in sorted(worst.items()):
            print(f"  {what:<22s} {ratio:.3e}")


def check_within(worst, what, ours, theirs, bound):
    """|ours - theirs| <= bound elementwise (array-likes of one shape, compared as
    float64); records the worst error/bound ratio under ``what``."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    err = np.abs(ours - theirs)
    bound = np.broadcast_to(bound, err.shape)
    ratio = float(np.max(err / np.maximum(bound, 1e-300), initial=0.0))
    worst[what] = max(worst.get(what, 0.0), ratio)
    bad = err > bound
    if np.any(bad):
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(f"{what}: {np.count_nonzero(bad)} of {err.size} outside the "
                             f"bound; at {i}: bnfast {ours[i]!r}, torch {theirs[i]!r}, "
                             f"error {err[i]:.3e} > bound {bound[i]:.3e}")


class WorstRelativeErrors:
    """Norm-wise relative errors (max |actual - expected| / max |expected|) checked
    against a bound, the worst per feature kept for report() (pytest -s)."""

    def __init__(self):
        self.worst = {}

    def check(self, feature, actual, expected, rtol):
        actual = np.asarray(actual, dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        assert actual.shape == expected.shape, (actual.shape, expected.shape)
        scale = np.max(np.abs(expected))
        assert scale > 0, "relative error against an all-zero expectation"
        err = float(np.max(np.abs(actual - expected)) / scale)
        self.worst[feature] = max(self.worst.get(feature, 0.0), err)
        assert err <= rtol, f"{feature}: relative error {err:.3e} > {rtol:.0e}"

    def report(self, title):
        if self.worst:
            print(f"\nworst relative errors against torch ({title}):")
            for feature, err in sorted(self.worst.items()):
                print(f"  {feature:<30s} {err:.3e}")


def torch_module_fixtures(torch, errors, title):
    """The autouse fixtures of a module of torch comparisons: torch on one thread for
    each test, and the worst relative errors of ``errors`` printed at the end (-s).
    Bind both names in the module: ``report_worst, one_torch_thread = ...``."""

    @pytest.fixture(scope="module", autouse=True)
    def report_worst():
        yield
        errors.report(title)

    @pytest.fixture(autouse=True)
    def one_torch_thread():
        with single_torch_thread(torch):
            yield

    return report_worst, one_torch_thread
