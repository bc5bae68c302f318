"""The bad arguments of a training call and what each must raise: one table for
bnfast.train (tests/nn) and bnfast.reference.train (tests/reference), which check them
independently and must accept and reject alike. The learning set is the 3-sample one of
Example 3.2 and the network has batch normalization."""

import math

import numpy as np

TRAIN_ARGUMENT_ERRORS = [
    ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
    ({"lr": -0.1}, ValueError, "lr must be a finite number > 0"),
    ({"lr": math.nan}, ValueError, "lr must be a finite number > 0"),
    ({"lr": math.inf}, ValueError, "lr must be a finite number > 0"),
    ({"lr": "0.1"}, TypeError, "lr must be a real number"),
    ({"lr": None}, TypeError, "lr must be a real number"),
    ({"lr": True}, TypeError, "lr must be a real number"),
    ({"lr": 1j}, TypeError, "lr must be a real number"),
    ({"steps": -1}, ValueError, "steps must be >= 0"),
    ({"steps": 2.0}, TypeError, "steps must be an int"),
    ({"steps": True}, TypeError, "steps must be an int"),
    ({"batch_size": 1}, ValueError, "batch_size must be >= 2 with batch normalization"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": 4}, ValueError, "batch_size 4 is larger than the 3 samples"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
    ({"batch_size": np.bool_(True)}, TypeError, "batch_size must be an int"),
    ({"record_every": 0}, ValueError, "record_every must be >= 1"),
    ({"record_every": -2}, ValueError, "record_every must be >= 1"),
    ({"record_every": None}, TypeError, "record_every must be an int"),
    ({"record_every": False}, TypeError, "record_every must be an int"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": 2**64}, ValueError, r"seed must be < 2\*\*64"),
    ({"seed": 1.0}, TypeError, "seed must be an int"),
    ({"seed": True}, TypeError, "seed must be an int"),
    ({"callback": 3}, TypeError, "callback must be callable"),
    ({"callback": "print"}, TypeError, "callback must be callable"),
]
