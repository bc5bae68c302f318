"""The engine gives, bit for bit, the outputs recorded in engine_bits.json: loss, gradient,
hvp, forward, predict, running statistics and training trajectories of every network
kind (engine_bits.py lists them). The digests were made by the engine before it became a
sequence of ops; a change of any bit fails here. Changed once on purpose: the hvp
digests, when the Dual tanh and sigmoid took their values from the vectorised kernel of
the double pass instead of libm (every other output kept its bits). The baseline and AVX2 variants give the
same bits (each sums in the same order, without FMA contraction), so the record holds on
either; it was made with engine_bits.THREADS threads, which outputs() sets."""

import json
from pathlib import Path

import pytest
from engine_bits import digest, outputs

RECORD = json.loads((Path(__file__).with_name("engine_bits.json")).read_text())


@pytest.fixture(scope="module")
def now():
    return outputs()


def test_every_recorded_output_is_computed(now):
    assert set(now) == set(RECORD["digests"])


def test_outputs_are_the_recorded_bits(now):
    changed = sorted(k for k, v in now.items() if digest(v) != RECORD["digests"].get(k))
    assert not changed, f"{len(changed)} outputs changed, e.g. {changed[:5]}"
