"""rtl.perf_model: the architecture planning model, on workloads small enough to count by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rtl.perf_model import (
    LAYER_SWITCH,
    PIPELINE,
    Memory,
    Workload,
    lane_bound,
    memory_bound,
    proportional,
    shared,
    split_lanes,
)


def _work() -> Workload:
    """784-64-10 over T = 2: 3 then 1 input spikes; layer 0 fires 2 neurons at step 0."""
    inp = np.zeros((2, 784), dtype=bool)
    inp[0, [0, 5, 700]] = True
    inp[1, 3] = True
    hidden = np.zeros((2, 64), dtype=bool)
    hidden[0, [1, 2]] = True
    out = np.zeros((2, 10), dtype=bool)
    return Workload.from_record((784, 64, 10), inp, [hidden, out])


def test_from_record_delays_every_layer_but_the_first() -> None:
    w = _work()
    assert w.events().tolist() == [[3, 0], [1, 2]]  # layer 1 sees layer 0's step 0 at step 1


def test_lane_bound_counts_useful_operations() -> None:
    assert lane_bound(_work(), 16) == (4 * 64 + 2 * 10) / 16


def test_shared_pool_on_chip_by_hand() -> None:
    # 16 lanes: B0 = 4, B1 = 1; an event of layer 1 still takes WRITE_DISTANCE = 4 cycles,
    # a fire pass B cycles (NeuronCore.accept_cycles)
    step0 = (3 * 4 + 4 + LAYER_SWITCH) + (0 + 1 + LAYER_SWITCH)
    step1 = (1 * 4 + 4 + LAYER_SWITCH) + (2 * 4 + 1 + LAYER_SWITCH)
    assert shared(_work(), 16).cycles == PIPELINE + 10 + step0 + step1


def test_external_memory_streams_rows_and_pays_latency_per_step() -> None:
    mem = Memory(bytes_per_cycle=8, latency=20, weight_bits=16)
    # a layer-0 row: 64 weights x 2 bytes / 8 = 16 cycles (> 4 of compute); a layer-1 row:
    # 16 padded lanes x 2 / 8 = 4 cycles; the fire pass follows the last row
    step0 = (3 * 16 + 4 + LAYER_SWITCH) + (0 + 1 + LAYER_SWITCH)
    step1 = (1 * 16 + 4 + LAYER_SWITCH) + (2 * 4 + 1 + LAYER_SWITCH)
    ext = shared(_work(), 16, mem)
    assert ext.cycles == PIPELINE + 10 + 2 * 20 + step0 + step1
    assert memory_bound(_work(), [16, 16], mem) == (4 * 64 + 2 * 16) * 2 / 8
    assert ext.bound == max(ext.lane_bound, ext.memory_bound) and ext.ratio >= 1


def test_proportional_waits_for_the_slowest_layer_each_step() -> None:
    r = proportional(_work(), [15, 1])
    assert r.cycles > shared(_work(), 16).cycles
    assert r.lane_bound == lane_bound(_work(), 16)


@pytest.mark.parametrize(("share", "total"), [([0.97, 0.03], 16), ([0.9, 0.09, 0.01], 24)])
def test_split_lanes(share: list[float], total: int) -> None:
    lanes = split_lanes(share, total)
    assert sum(lanes) == total and min(lanes) >= 1
    assert lanes[0] == max(lanes)
