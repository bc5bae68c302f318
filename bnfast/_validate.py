"""The Python layer's rules for user input: conversions and value checks, each written
once here and used by bnfast.kernels, bnfast.nn, the experiments, the sweeps and the
claims (an argument rule is one function: a count, a seed, a finite bound, a choice
among names, a bool, ...).

Who owns which rule (docs/design/argument_rules.md has the whole table):
- here: dtype policy and conversion to C-contiguous float32/float64, Python types (an int
  is not a bool, a real number is not a string), and scalar values (eps, momentum, lr,
  steps, seed, record_every, ...);
- the bindings (csrc/bind): the structure of arrays (ndim, shapes against each other,
  contiguity, writability, rows per batch), which guards the raw pointers of the core;
- the core (csrc/core): what only the data reveals (zero variance with eps = 0,
  non-finite statistics, divergence).

Nothing here computes; nothing here modifies its inputs. Errors name the argument.
"""

import math
import numbers

import numpy as np

_FLOAT_COMPUTE = {np.dtype(np.float16): np.dtype(np.float32),
                  np.dtype(np.float32): np.dtype(np.float32),
                  np.dtype(np.float64): np.dtype(np.float64)}


def compute_dtype(arr, name):
    """The dtype bnfast computes in for an input of arr's dtype.

    float32 and float64 compute as themselves; float16 computes in float32 (results
    are converted back); integers and bools are converted to float64. Anything else
    (complex, object, strings, float128, datetimes) is a TypeError.
    """
    dt = arr.dtype
    if dt.kind == "f":
        native = dt.newbyteorder("=")
        if native in _FLOAT_COMPUTE:
            return _FLOAT_COMPUTE[native]
        raise TypeError(f"{name} has dtype {dt}, which bnfast does not support; "
                        "use float32 or float64")
    if dt.kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(f"{name} must hold real numbers (float32/float64, or ints/bools "
                    f"converted to float64), got dtype {dt}")


def result_dtype(arr):
    """The dtype of an output computed from an input of arr's dtype."""
    dt = arr.dtype
    if dt.kind == "f" and dt.newbyteorder("=") == np.float16:
        return np.dtype(np.float16)
    return compute_dtype(arr, "x")


_NATIVE_FLOAT_CHARS = "fd"


def float_input(x, name):
    """x as a C-contiguous float32/float64 array (a copy only when needed), and the
    dtype the caller's result should have. Its shape is the bindings' to check."""
    if (type(x) is np.ndarray and x.dtype.char in _NATIVE_FLOAT_CHARS and x.dtype.isnative
            and x.flags.c_contiguous):
        return x, x.dtype  # the common case, kept cheap for tiny arrays
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}")
    arr = np.asarray(x)
    return np.asarray(arr, dtype=compute_dtype(arr, name), order="C"), result_dtype(arr)


def float64_array(v, name):
    """v as a C-contiguous float64 array (None stays None); ints and bools convert."""
    if v is None:
        return None
    if type(v) is np.ndarray and v.dtype.char == "d" and v.dtype.isnative \
            and v.flags.c_contiguous:
        return v  # the common case (e.g. mean/invstd from batch_norm_forward), kept cheap
    if isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must hold real numbers, got {type(v).__name__}")
    arr = np.asarray(v)
    compute_dtype(arr, name)
    return np.asarray(arr, dtype=np.float64, order="C")


def real_number(value, name):
    """value as a Python float; TypeError for non-numbers (bools included)."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _int(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def integer(value, name, low, high=None):
    """value as a Python int in [low, high] (no upper bound when high is None): a count,
    a size; TypeError for non-ints (bools included)."""
    value = _int(value, name)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def integer_text(text, name):
    """The integer a user typed (a command-line count such as --instances): decimal
    digits ("1000000", "1_000_000") or a number in float notation whose value is an
    integer ("1e6", "2.5e3"), as a Python int (exact: "1e30" is 10**30); ValueError
    naming ``name`` for anything else ("1.5", "1e-3", "inf", "nan", "ten"). Its range is
    the caller's rule (``integer``, ``seed``)."""
    import decimal

    try:
        return int(text, 10)
    except (TypeError, ValueError):
        pass
    try:
        value = decimal.Decimal(text.strip())
    except (AttributeError, decimal.InvalidOperation):
        value = None
    if value is None or not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"{name} must be an integer (e.g. 1000000 or 1e6), got {text!r}")
    if value.adjusted() > 100:      # no count or seed has 100 digits; 1e999999999 would
        raise ValueError(f"{name} is out of range, got {text!r}")    # take minutes
    return int(value)


#: The core keeps update counts in an int64: a count of updates done is in [0, 2**63).
COUNT_END = 2**63


def update_count(value, name):
    """value as a Python int in [0, 2**63): a count of updates already done (a
    network's running-statistics updates, an optimizer's), restored from a pickle or a
    TrainResult; the core keeps it in an int64."""
    value = integer(value, name, 0)
    if value >= COUNT_END:
        raise ValueError(f"{name} must be < 2**63 (an int64 count), got {value}")
    return value


#: Seeds of the experiments, sweeps and audits are in [0, SEED_END): 63 bits, what
#: derived_seed (bnfast.executors) hands out and a signed 64-bit column can hold.
SEED_END = 2**63


def seed(value, name="seed"):
    """value as a Python int in [0, 2**63): the seed of an experiment, a sweep or an
    audit; TypeError for non-ints (bools included)."""
    value = _int(value, name)
    if not 0 <= value < SEED_END:
        raise ValueError(f"{name} must be in [0, 2**63), got {value}")
    return value


def choice(value, name, allowed):
    """value, checked to be one of the strings ``allowed`` (TypeError for a non-string,
    ValueError for another string; both list the choices)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                        f"got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                         f"got {value!r}")
    return value


def axis_value(axis):
    """axis as an int the core can take (its range against x.ndim is checked by the
    bindings, which know the array)."""
    if type(axis) is int and -2**62 <= axis < 2**62:
        return axis  # the common case, kept cheap (a tiny call costs ~1 us in all)
    axis = integer(axis, "axis", -2**62)
    if axis >= 2**62:
        raise ValueError(f"axis {axis} is out of range")
    return axis


def boolean(value, name):
    """value as a Python bool; TypeError for anything but bool and numpy.bool_."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def eps_value(eps):
    """eps as a float, finite and >= 0."""
    eps = real_number(eps, "eps")
    if not (eps >= 0.0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    return eps


def positive_finite(value, name):
    """value as a float, finite and > 0 (a step size, a bound)."""
    value = real_number(value, name)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def momentum_value(momentum):
    """momentum as a float in [0, 1] (None is refused, with the way out)."""
    if momentum is None:
        raise ValueError(
            "momentum=None (the cumulative average) needs a count of the batches seen, "
            "which a functional call does not have: for the k-th batch (k = 1, 2, ...) "
            "pass momentum=1/k, which gives exactly the cumulative average")
    momentum = real_number(momentum, "momentum")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    return momentum


def check_out(out, x, result, name="out", sources=(), empty=np.empty):
    """Validates a caller's out= for an input x (C-contiguous compute array) whose
    result dtype is `result`; returns (buffer for the kernel, array to copy into).

    `sources` are the arrays the kernel reads: out may be one of them exactly (the
    kernels work in place) but must not overlap one partially. `empty(shape, dtype)`
    allocates the buffer when one is needed. out= is the Python layer's rule: a float16
    out never reaches the core."""
    if out is None:
        return empty(x.shape, x.dtype), None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None, got {type(out).__name__}")
    if out.dtype != result:
        raise TypeError(f"{name} must have dtype {result} (the result's), got {out.dtype}")
    if out.shape != x.shape:
        raise ValueError(f"{name} must have shape {x.shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    for source in sources:
        if np.may_share_memory(out, source) and not _same_view(out, source):
            raise ValueError(f"{name} overlaps an input without being the same array; "
                             "pass the input itself (in place) or a separate array")
    if out.dtype == x.dtype and out.flags.c_contiguous:
        return out, None
    return empty(x.shape, x.dtype), out


def _same_view(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape)
