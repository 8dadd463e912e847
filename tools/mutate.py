"""Mutation score of the RTL: how many realistic bugs the fast Amaranth tests catch.

Why: the tests compare every block with golden/ on random stimulus, and random
stimulus almost never reaches a value exactly equal to a threshold, a clamp the
test configs cannot reach, a ready held low or a register's range edge. Each
mutant below plants one such bug (an off-by-one, a wrong comparison, a missing
gate, a swapped operand, a wrong reset value) in a *copy* of the checkout, runs
the block's tests and the accelerator's against it, and records which test
failed first. A mutant no test kills is a bug the suite would let through.

Each mutant is a (file, exact original snippet, replacement) edit; the snippet
must occur exactly once in the file, else the run stops before testing anything,
so that a mutant never silently stops applying after the RTL changes. Mutants
that cannot change any observable behaviour are marked ``equivalent`` with the
reason: they are run too, and the run fails if a test kills one (then the reason
is wrong). The run fails (exit 1) when a non-equivalent mutant survives.

Usage (``make mutate``; docs/mutation.md)::

    python tools/mutate.py [-j 2] [--timeout 300] [--only ID_OR_BLOCK ...] [--list] [--check]

The real rtl/ is never edited: every worker copies the files git knows about
(tracked and untracked, ignored ones excluded, so the working tree's edits
count) into a temporary folder, and runs ``pytest`` there with this interpreter,
``PYTHONPATH`` set to the copy and byte-code writing off (a mutant and the
original of equal size and time stamp would share a stale ``.pyc`` otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCELERATOR_TESTS = "tests/test_rtl_accelerator.py"
DEFAULT_JSON = "bench/results/mutation.json"
DEFAULT_MARKDOWN = "bench/results/mutation.md"


@dataclass(frozen=True)
class Mutant:
    """One planted bug: ``original`` (exactly once in ``file``) becomes ``replacement``.

    ``tests``: test files beyond the block's own (``tests/test_rtl_<block>.py`` and
    ``tests/test_rtl_<block>_edges.py`` when they exist) and the accelerator's.
    ``equivalent``: why no test can kill it, for a mutant that cannot change behaviour.
    """

    id: str
    block: str
    file: str
    original: str
    replacement: str
    description: str
    equivalent: str | None = None
    tests: tuple[str, ...] = field(default=())

    def test_files(self, root: Path) -> list[str]:
        """Test files to run, the block's own first (fast), the accelerator's last (slow)."""
        own = [f"tests/test_rtl_{self.block}.py", f"tests/test_rtl_{self.block}_edges.py"]
        files = [f for f in (*own, *self.tests) if (root / f).is_file()]
        return list(dict.fromkeys([*files, ACCELERATOR_TESTS]))


def _m(
    block: str,
    name: str,
    original: str,
    replacement: str,
    description: str,
    *,
    file: str | None = None,
    equivalent: str | None = None,
    tests: tuple[str, ...] = (),
) -> Mutant:
    """A mutant of ``rtl/<block>.py`` (or ``file``), named ``<block>/<name>``."""
    return Mutant(
        f"{block}/{name}",
        block,
        file or f"rtl/{block}.py",
        original,
        replacement,
        description,
        equivalent,
        tests,
    )


MUTANTS: tuple[Mutant, ...] = (
    # --- neuron core ------------------------------------------------------------------
    _m(
        "neuron_core",
        "fire-strict",
        "fire = ~minus[-1] & keep[j]",
        "fire = ~minus[-1] & (minus != 0) & keep[j]",
        "fires only when v > thr, not at v == thr",
    ),
    _m(
        "neuron_core",
        "keep-ignored",
        "fire = ~minus[-1] & keep[j]",
        "fire = ~minus[-1]",
        "a dropped neuron fires",
    ),
    _m(
        "neuron_core",
        "rail-hi",
        "Mux(keep, d.hi_minus_thr, hi)",
        "Mux(keep, d.hi_minus_thr, hi - 1)",
        "upper saturation rail one below the maximum",
    ),
    _m(
        "neuron_core",
        "rail-lo",
        "Mux(under, lo, Mux(",
        "Mux(under, lo + 1, Mux(",
        "lower saturation rail one above the minimum",
    ),
    _m(
        "neuron_core",
        "sat-range",
        "top = vj[mb - 1 :]",
        "top = vj[mb:]",
        "overflow read one bit too high: [hi + 1, 2 * hi + 1] not saturated",
    ),
    _m(
        "neuron_core",
        "sat-no-reset",
        "m.d.sync += hi_minus_thr.eq(hi - thr)",
        "m.d.sync += hi_minus_thr.eq(hi)",
        "a saturated neuron fires but is not reset",
    ),
    _m(
        "neuron_core",
        "decay-shift",
        "reset[j] - (reset[j] >> self._decay_shift)",
        "reset[j] - (reset[j] >> (self._decay_shift + 1))",
        "decay shift one too large",
    ),
    _m(
        "neuron_core",
        "reset-to-zero",
        "Mux(fire, d.minus[j], d.v[j])",
        "Mux(fire, 0, d.v[j])",
        "reset to zero instead of by subtraction",
    ),
    _m(
        "neuron_core",
        "hazard-distance",
        "m.d.sync += c.eq(self.WRITE_DISTANCE - 1)",
        "m.d.sync += c.eq(self.WRITE_DISTANCE - 2)",
        "read-after-write distance one cycle short",
    ),
    # --- encoder ----------------------------------------------------------------------
    _m(
        "encoder",
        "fire-strict",
        "fire = a3[j] >= PIXEL_FULL",
        "fire = a3[j] > PIXEL_FULL",
        "fires only above 255, not at 255",
    ),
    _m(
        "encoder",
        "first-ignored",
        "Mux(first, 0, acc2[j]) + pix2[j]",
        "acc2[j] + pix2[j]",
        "accumulators carry over into the next sample",
    ),
    _m(
        "encoder",
        "keep-ignored",
        "fires.append(fire & keep3[j])",
        "fires.append(fire)",
        "a dropped pixel fires",
    ),
    _m(
        "encoder",
        "start-while-busy",
        "with m.Elif(self.start & ~self.busy):",
        "with m.Elif(self.start):",
        "a start while the last words drain restarts the step",
    ),
    _m(
        "encoder",
        "busy-short",
        "s3_valid | self.spk_valid)",
        "s3_valid)",
        "busy falls while the last spike word is still on the output",
    ),
    # --- spike scanner ----------------------------------------------------------------
    _m(
        "spike_scanner",
        "last-word",
        "(ptr != self._words)):",
        "(ptr != self._words - 1)):",
        "the last word is never loaded",
    ),
    _m(
        "spike_scanner",
        "take-needs-ready",
        "take = ~self.events.valid | self.events.ready",
        "take = self.events.ready",
        "an empty output register waits for ready before it loads",
    ),
    _m(
        "spike_scanner",
        "start-keeps-offer",
        "m.d.sync += [ptr.eq(0), mask.eq(0), self.events.valid.eq(0)]",
        "m.d.sync += [ptr.eq(0), mask.eq(0)]",
        "start does not withdraw the index on offer",
    ),
    _m(
        "spike_scanner",
        "done-with-offer",
        "(mask == 0) & ~self.events.valid)",
        "(mask == 0))",
        "done while the last index is still on offer",
    ),
    # --- step scanner (shared pool) ---------------------------------------------------
    _m(
        "step_scanner",
        "highest-first",
        "for j in reversed(range(w)):  # priority encoder: the last assignment (lowest j) wins",
        "for j in range(w):  # priority encoder: the last assignment (lowest j) wins",
        "a word's spikes come out highest first",
    ),
    _m(
        "step_scanner",
        "no-fire",
        "fire.eq(item_fire[ptr]),",
        "fire.eq(0),",
        "a layer's fire operation is never offered",
    ),
    _m(
        "step_scanner",
        "local-word",
        "ops.payload.index.eq(Mux(mask != 0, local * w + lowest, 0)),",
        "ops.payload.index.eq(Mux(mask != 0, local * w + lowest + 1, 0)),",
        "input indices off by one",
    ),
    _m(
        "step_scanner",
        "skip-last-item",
        "& (ptr != n_items)):",
        "& (ptr != n_items - 1)):",
        "the last layer's fire item is never loaded",
    ),
    # --- shared pool: the datapath of hardware.architecture = shared ---------------------
    _m(
        "shared_pool",
        "no-delay",
        "        with m.If(seq.launch):\n            m.d.sync += copy.eq(vector)\n",
        "        m.d.comb += copy.eq(vector)\n",
        "layers read the live vectors: no one-step delay between layers",
        tests=("tests/test_rtl_accelerator.py",),
    ),
    _m(
        "shared_pool",
        "fire-on-event-ready",
        "ops.ready.eq(Mux(ops.payload.fire, core.fire_ready, core.events.ready)),",
        "ops.ready.eq(core.events.ready),",
        "a fire operation is handed on when an event could go, not when the fire can",
        tests=("tests/test_rtl_accelerator_external.py", "tests/test_rtl_accelerator.py"),
    ),
    _m(
        "shared_pool",
        "update-base",
        "core.u_addr.eq(learn.u_flat),",
        "core.u_addr.eq(learn.w_flat),",
        "the update's write-back at the flat address being read, not the one written",
        tests=("tests/test_rtl_accelerator.py",),
    ),
    _m(
        "shared_pool",
        "prefetch-base",
        "address = row_address(host.weight_base, layer, index, word_base, blocks, reader.stride)",
        "address = row_address(0, layer, index, word_base, blocks, reader.stride)",
        "external weights read without WEIGHT_BASE",
        tests=("tests/test_rtl_accelerator_external.py",),
    ),
    # --- AXI weight reader --------------------------------------------------------------
    _m(
        "axi_weight_reader",
        "level-overstates",
        "self.level.eq(Mux(out_valid, inner_level + 1, 0)),",
        "self.level.eq(Mux(out_valid, inner_level + 2, 0)),",
        "level promises one word more than the FIFO holds",
        tests=("tests/test_rtl_accelerator_external.py",),
    ),
    # --- host bus ---------------------------------------------------------------------
    _m(
        "host_bus",
        "err-word-range",
        "for d in amap.depths)[layer] > word",
        "for d in amap.depths)[layer] >= word",
        "a write one word past a layer is not flagged",
    ),
    _m(
        "host_bus",
        "we-word-range",
        "(word < depth) & (lane < amap.lanes) & (layer == l)",
        "(word <= depth) & (lane < amap.lanes) & (layer == l)",
        "a write one word past a layer reaches the memory",
    ),
    _m(
        "host_bus",
        "err-lane-range",
        "weight_ok = (layer < len(amap.depths)) & (lane < amap.lanes)",
        "weight_ok = (layer < len(amap.depths)) & (lane <= amap.lanes)",
        "a write to lane == lanes is not flagged",
    ),
    _m(
        "host_bus",
        "thr-max",
        "(wdata <= self._thr_hi)",
        "(wdata < self._thr_hi)",
        "the largest threshold is refused",
    ),
    _m(
        "host_bus",
        "thr-zero",
        "thr_ok = (wdata > 0)",
        "thr_ok = (wdata >= 0)",
        "threshold 0 accepted",
    ),
    _m(
        "host_bus",
        "w1c-both",
        "with m.If(bus.wdata & Status.ERR_BUSY):",
        "with m.If(bus.wdata & (Status.ERR_BUSY | Status.ERR_WRITE)):",
        "writing ERR_WRITE also clears ERR_BUSY",
    ),
    _m(
        "host_bus",
        "weight-write-busy",
        "Mux(bus.we & is_weight & ~self.busy, Cat(*in_layer), 0)",
        "Mux(bus.we & is_weight, Cat(*in_layer), 0)",
        "weight writes reach the memories while busy",
    ),
    _m(
        "host_bus",
        "lr-write-busy",
        """with m.Case(regs.LR_INT):
                with m.If(self.busy):
                    m.d.sync += err_busy.eq(1)
                with m.Else():
                    m.d.sync += self.lr_int.eq(bus.wdata)""",
        """with m.Case(regs.LR_INT):
                m.d.sync += self.lr_int.eq(bus.wdata)""",
        "LR_INT written while busy",
    ),
    _m(
        "host_bus",
        "weight-read-busy",
        "was_weight = delay(m, is_weight & ~self.busy,",
        "was_weight = delay(m, is_weight,",
        "weights read while busy return the memory word, not 0",
    ),
    _m(
        "host_bus",
        "reg-read-latency",
        "reg_late = delay(m, reg_rdata, lat,",
        "reg_late = delay(m, reg_rdata, lat - 1,",
        "register reads one cycle earlier than READ_LATENCY",
    ),
    _m(
        "host_bus",
        "mode-max",
        "with m.Elif(bus.wdata > mode_max):",
        "with m.Elif(bus.wdata > mode_max + 1):",
        "MODE = 2 accepted",
    ),
    _m(
        "host_bus",
        "stalls-cleared-by-start",
        "counters.cycles.eq(0),",
        "counters.cycles.eq(0),\n                counters.stalls.eq(0),",
        "STALLS restarts with every sample",
    ),
    _m(
        "host_bus",
        "weight-alias-register",
        "m.d.sync += reg_rdata.eq(Mux(is_weight, 0, value))",
        "m.d.sync += reg_rdata.eq(value)",
        "a weight address read while busy returns a register",
    ),
    # --- sequencer --------------------------------------------------------------------
    _m(
        "sequencer",
        "result-ready-ignored",
        """with m.If(self.result_ready):
                    m.next = "IDLE\"""",
        """m.next = "IDLE\"""",
        "the result is dropped when the host does not take it at once",
    ),
    _m(
        "sequencer",
        "last-pixel",
        "last_pixel.eq(pix_next == n_in - 2)",
        "last_pixel.eq(pix_next == n_in - 1)",
        "the sample starts one pixel late",
    ),
    _m(
        "sequencer",
        "fire-twice",
        "running & ~fired[l] & self.scan_done[l] & idle",
        "running & self.scan_done[l] & idle",
        "a core may fire twice in a phase",
    ),
    _m(
        "sequencer",
        "encoder-extra-step",
        "self.encoder_start.eq(phase != tsteps)",
        "self.encoder_start.eq(1)",
        "the encoder runs a step in the last phase",
    ),
    _m(
        "sequencer",
        "barrier-no-encoder",
        "done = [~self.encoder_busy]",
        "done = [self.encoder_busy | 1]",
        "the phase barrier does not wait for the encoder",
    ),
    # --- class counter ----------------------------------------------------------------
    _m(
        "class_counter",
        "tie-later-wins",
        "with m.Elif(cur > best):",
        "with m.Elif(cur >= best):",
        "on a tie the later class wins",
    ),
    _m(
        "class_counter",
        "tie-not-cleared",
        "m.d.sync += [best.eq(cur), best_idx.eq(k), tie.eq(0)]",
        "m.d.sync += [best.eq(cur), best_idx.eq(k)]",
        "a tie below a later strict maximum still counts",
    ),
    _m(
        "class_counter",
        "tie-kept-across-samples",
        "m.d.sync += [best.eq(cur), best_idx.eq(0), tie.eq(0)]",
        "m.d.sync += [best.eq(cur), best_idx.eq(0)]",
        "the tie flag survives into the next arg-max",
    ),
    _m(
        "class_counter",
        "count-width",
        'Signal(self._tsteps.bit_length(), name=f"count{n}")',
        'Signal((self._tsteps - 1).bit_length(), name=f"count{n}")',
        "counters one bit short when T is a power of two",
    ),
    # --- dropout and PRNG -------------------------------------------------------------
    _m(
        "dropout",
        "draw-equal-threshold",
        "top >= p))",
        "top > p))",
        "a draw equal to drop_p drops the neuron",
    ),
    _m(
        "dropout",
        "last-draw",
        "self.last.eq(k == self.draws - 1 if self.draws else 1)",
        "self.last.eq(k == self.draws if self.draws else 1)",
        "one draw too many per sample",
    ),
    _m(
        "dropout",
        "enable-ignored",
        "Mux(self.enable, mask, ones)",
        "mask",
        "masks apply in inference",
    ),
    _m(
        "dropout",
        "layer-window",
        "(k >= start) & (k < start + n)",
        "(k >= start) & (k <= start + n)",
        "a layer's mask also takes the next layer's first draw",
    ),
    _m(
        "prng",
        "shift",
        "x = x ^ (x >> 17)",
        "x = x ^ (x >> 16)",
        "xorshift right shift 16 instead of 17",
        tests=("tests/test_rtl_update_unit.py", "tests/test_rtl_dropout.py"),
    ),
    _m(
        "prng",
        "no-hold",
        """with m.If(self.draw):
            m.d.sync += state.eq(self.value)""",
        "m.d.sync += state.eq(self.value)",
        "the state advances without a draw strobe",
        tests=("tests/test_rtl_update_unit.py", "tests/test_rtl_dropout.py"),
    ),
    # --- update unit ------------------------------------------------------------------
    _m(
        "update_unit",
        "nearest-half-down",
        "rnd = 1 << (shift - 1)",
        "rnd = (1 << (shift - 1)) - 1",
        "round to nearest rounds halves down",
    ),
    _m(
        "update_unit",
        "trace-clamp-missing",
        "step.eq(Mux(nxt > r_max, r_max, nxt) if can_clamp else nxt)",
        "step.eq(nxt)",
        "the trace wraps instead of clamping",
    ),
    _m(
        "update_unit",
        "trace-clamp-ge",
        "Mux(nxt > r_max, r_max, nxt)",
        "Mux(nxt >= r_max, r_max, nxt)",
        "trace clamp compares >= instead of >",
        equivalent="at nxt == r_max both pick r_max",
    ),
    _m(
        "update_unit",
        "trace-decay",
        "nxt = r - (r >> k) + Mux(train[t], one, 0)",
        "nxt = r - (r >> (k + 1)) + Mux(train[t], one, 0)",
        "trace decay shift one too large",
    ),
    _m(
        "update_unit",
        "gate-sign",
        "new = Mux(g == 0, w, Mux(g < 0, down, up))",
        "new = Mux(g == 0, w, Mux(g > 0, down, up))",
        "desire sign swapped",
    ),
    _m(
        "update_unit",
        "weyl-step",
        "weyl.eq((base + (p * WEYL_STEP & MASK32))[:32])",
        "weyl.eq((base + ((p - 1) * WEYL_STEP & MASK32))[:32])",
        "Weyl base advances one lane short per word",
    ),
    _m(
        "update_unit",
        "stochastic-bits",
        "[:32] >> (32 - shift)",
        "[:32] >> (31 - shift)",
        "stochastic offset one bit too wide",
    ),
    _m(
        "update_unit",
        "row-base-unlatched",
        "base = Mux(self.word_first, row_base, weyl)",
        "base = Mux(self.word_first, self.row_rand, weyl)",
        "a row's first word takes row_rand off the port, not the latched base",
    ),
    _m(
        "update_unit",
        "weight-rail",
        "hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))",
        "hi, lo = (1 << (bits - 1)) - 2, -(1 << (bits - 1))",
        "upper weight rail one below the maximum",
        file="rtl/pipeline.py",
    ),
    _m(
        "update_unit",
        "clamp-range",
        "top = value[bits - 1 :]",
        "top = value[bits:]",
        "overflow read one bit too high: a small overflow wraps",
        file="rtl/pipeline.py",
    ),
    # --- desire unit ------------------------------------------------------------------
    _m(
        "desire_unit",
        "label-below-inclusive",
        "cnt < self._label_below",
        "cnt <= self._label_below",
        "label neuron desired at c == out_label_below",
    ),
    _m(
        "desire_unit",
        "other-above-inclusive",
        "cnt > self._other_above",
        "cnt >= self._other_above",
        "other neuron desired at c == out_other_above",
    ),
    _m(
        "desire_unit",
        "dist-ge",
        "Mux(cnt > self._target, cnt - self._target, self._target - cnt)",
        "Mux(cnt >= self._target, cnt - self._target, self._target - cnt)",
        "|R - c| compares >= instead of >",
        equivalent="at cnt == R both branches are 0",
    ),
    _m(
        "desire_unit",
        "margin-ignored",
        "Mux(cnt > self._target, cnt - self._target, self._target - cnt)",
        "Mux(cnt > self._tsteps, cnt - self._tsteps, self._tsteps - cnt)",
        "error measured from T, not R = T - error margin",
    ),
    _m(
        "desire_unit",
        "hid-thr-pos-strict",
        "(acc >= self._hid_thr)",
        "(acc > self._hid_thr)",
        "S == hid_thr not active",
    ),
    _m(
        "desire_unit",
        "hid-thr-neg-strict",
        "(acc <= -self._hid_thr)",
        "(acc < -self._hid_thr)",
        "S == -hid_thr not active",
    ),
    _m(
        "desire_unit",
        "sign-at-zero",
        "self.hid_sign.eq(acc > 0)",
        "self.hid_sign.eq(acc >= 0)",
        "S == 0 gives sign +1",
    ),
    _m(
        "desire_unit",
        "neg-swapped",
        "negs[j].eq(q[j] < 0)",
        "negs[j].eq(q[j] > 0)",
        "E * q negated for the wrong sign in the MAC",
    ),
    _m(
        "desire_unit",
        "mac-not-restarted",
        "acc.eq(Mux(first, 0, acc) + dot)",
        "acc.eq(acc + dot)",
        "the accumulator is not restarted on mac_first",
    ),
    # --- training sequencer -----------------------------------------------------------
    _m(
        "training_sequencer",
        "no-silent-skip",
        "with m.If(iss.row_silent[l]):",
        "with m.If(iss.row_silent[l] & 0):",
        "silent rows are not skipped",
    ),
    _m(
        "training_sequencer",
        "skip-word",
        "m.d.sync += iss.word.eq(iss.word + blocks[l])",
        "m.d.sync += iss.word.eq(iss.word + blocks[l] - 1)",
        "a skipped row advances the weight word one short",
    ),
    _m(
        "training_sequencer",
        "skip-flat",
        "m.d.sync += iss.flat.eq(iss.flat + blocks[l])",
        "m.d.sync += iss.flat.eq(iss.flat + blocks[l] - 1)",
        "a skipped row advances the flat weight address (shared pool) one short",
        tests=("tests/test_rtl_accelerator.py",),
    ),
    _m(
        "training_sequencer",
        "drain-short",
        "with m.If(drain == cycles - 1):",
        "with m.If(drain == cycles - 2):",
        "wait states one cycle short",
    ),
    _m(
        "training_sequencer",
        "next-row-word",
        "next_word = Mux(iss.row_lane == p - 1, iss.row_word + 1, iss.row_word)",
        "next_word = Mux(iss.row_lane == p, iss.row_word + 1, iss.row_word)",
        "the next row's train word never advances",
    ),
    _m(
        "training_sequencer",
        "out-blocks",
        "with m.If(iss.block == blocks[-1] - 1):",
        "with m.If(iss.block == blocks[-1]):",
        "one output block too many",
    ),
    # --- training datapath ------------------------------------------------------------
    _m(
        "training_datapath",
        "hidden-row-delay",
        "lanes = [Cat(Const(0, 1), x[:-1]) for x in lanes]",
        "lanes = list(lanes)",
        "hidden update rows miss the one-step delay",
    ),
    _m(
        "training_datapath",
        "hidden-keep-ignored",
        "ternary(du.hid_active, du.hid_sign, self.keep(l).bit_select(g_index, 1))",
        "ternary(du.hid_active, du.hid_sign, Const(1))",
        "a dropped hidden neuron gets desire",
    ),
    _m(
        "training_datapath",
        "input-train-step",
        "when = self.phase if j == 0 else step",
        "when = step",
        "the input layer's train written one step early",
    ),
    # --- banked memory ----------------------------------------------------------------
    _m(
        "banked_memory",
        "bank-select-delay",
        "for k in range(3):",
        "for k in range(2):",
        "bank select one cycle early",
    ),
    _m(
        "banked_memory",
        "wen-lane",
        'wen = delay(m, self.wen[j], 1, f"wen{j}")',
        'wen = delay(m, self.wen[0], 1, f"wen{j}")',
        "every lane takes lane 0's write enable",
    ),
    _m(
        "banked_memory",
        "rdata-unmasked",
        "m.d.sync += q.eq(Mux(r_sel[b], word, 0))",
        "m.d.sync += q.eq(word)",
        "banks not selected still OR into the read data",
    ),
    _m(
        "banked_memory",
        "raddr-ungated",
        """with m.If(r_hit[b]):
                    m.d.sync += ra.eq(raddr[:low])""",
        "m.d.sync += ra.eq(raddr[:low])",
        "every bank loads every read address",
        equivalent=(
            "a bank's word reaches rdata only when the delayed r_bank picks that bank, i.e. "
            "for a read that hit it, and such a read loaded its address in both versions"
        ),
    ),
)


@dataclass
class Result:
    """What one mutant's run found; ``killed_by`` is the first failing test id."""

    id: str
    block: str
    file: str
    description: str
    equivalent: str | None
    status: str  # killed, survived, timeout
    killed_by: str | None
    seconds: float


def source_files(root: Path) -> list[str]:
    """Files git knows about in the working tree (tracked and untracked, not ignored):
    the source with every uncommitted edit, without .venv and build outputs."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def apply(text: str, mutant: Mutant) -> str:
    """``text`` with the mutant's edit; raises unless its snippet is there exactly once."""
    count = text.count(mutant.original)
    if count != 1:
        raise SystemExit(
            f"mutant {mutant.id}: snippet found {count} times in {mutant.file} "
            f"(must be exactly once; update the mutant list):\n{mutant.original}"
        )
    return text.replace(mutant.original, mutant.replacement)


def check_all(mutants: Sequence[Mutant], root: Path) -> None:
    """Every mutant applies (stops the run before any test otherwise); ids are unique."""
    ids = [m.id for m in mutants]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"duplicate mutant ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    for mutant in mutants:
        apply((root / mutant.file).read_text(), mutant)


def make_copy(root: Path, files: Sequence[str], dest: Path) -> None:
    """``files`` (relative to ``root``) into ``dest``, folders made as needed."""
    for f in files:
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, target)


def pytest_env(copy: Path) -> dict[str, str]:
    """This environment with the copy first on ``PYTHONPATH`` (ahead of the editable
    install, which points at the real checkout), no byte-code files, and no
    ``PYTEST_ADDOPTS`` that could change what a run reports."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_pytest(copy: Path, files: Sequence[str], timeout: float) -> tuple[int | None, str]:
    """pytest ``-x -q`` on ``files`` in ``copy``; (exit code or None on timeout, output).

    pytest stays in this process group (the simulations run in its own process), so
    a Ctrl-C at the terminal stops it too; a timeout kills it.
    """
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "--tb=line"]
    cmd += ["-p", "no:cacheprovider", *files]
    proc = subprocess.Popen(
        cmd,
        cwd=copy,
        env=pytest_env(copy),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out
    return proc.returncode, out


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def first_failure(output: str) -> str:
    """The first ``FAILED``/``ERROR`` test id of pytest's short summary (``-rfE``)."""
    match = FAILED.search(output)
    return match.group(1) if match else "pytest error (no test id)"


def run_mutant(mutant: Mutant, copy: Path, timeout: float) -> Result:
    """Apply ``mutant`` in ``copy``, run its tests, restore the file."""
    path = copy / mutant.file
    original = path.read_text()
    path.write_text(apply(original, mutant))
    start = time.monotonic()
    try:
        rc, out = run_pytest(copy, mutant.test_files(copy), timeout)
    finally:
        path.write_text(original)
    seconds = round(time.monotonic() - start, 1)
    if rc is None:
        status, killer = "timeout", f"timeout ({timeout:g} s)"
    elif rc == 0:
        status, killer = "survived", None
    elif rc in (1, 2):  # test failures; 2: interrupted, e.g. an import error at collection
        status, killer = "killed", first_failure(out)
    else:
        raise SystemExit(f"mutant {mutant.id}: pytest exit {rc}, not a test result:\n{out}")
    return Result(
        mutant.id,
        mutant.block,
        mutant.file,
        mutant.description,
        mutant.equivalent,
        status,
        killer,
        seconds,
    )


@contextmanager
def copies(root: Path, n: int) -> Iterator[list[Path]]:
    """``n`` copies of the checkout's source in a temporary folder, removed afterwards."""
    files = source_files(root)
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        paths = []
        for k in range(n):
            dest = Path(tmp) / f"copy{k}"
            make_copy(root, files, dest)
            paths.append(dest)
        yield paths


def check_copy_imports_itself(copy: Path) -> None:
    """The copy's rtl/, not the editable install's, is the one imported (else every
    mutant would survive)."""
    code = "import rtl, sys; sys.stdout.write(rtl.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=copy,
        env=pytest_env(copy),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"the copy imports rtl from {out}, not from {copy}")


def baseline(copy: Path, mutants: Sequence[Mutant], timeout: float) -> None:
    """The unmutated tests pass in the copy, else every mutant would look killed."""
    files = list(dict.fromkeys(f for m in mutants for f in m.test_files(copy)))
    rc, out = run_pytest(copy, files, timeout)
    if rc != 0:
        raise SystemExit(f"the unmutated tests fail in the copy (exit {rc}):\n{out[-3000:]}")


def score(results: Sequence[Result]) -> tuple[int, int]:
    """(killed, non-equivalent total); a timeout counts as killed (a hang is detected)."""
    real = [r for r in results if r.equivalent is None]
    return sum(r.status != "survived" for r in real), len(real)


def markdown(results: Sequence[Result]) -> str:
    """The score line and the table (mutant, block, bug, killed by) in Markdown."""
    killed, total = score(results)
    equivalent = [r for r in results if r.equivalent is not None]
    lines = [
        f"Killed {killed} / {total} non-equivalent mutants "
        f"({len(results)} in all, {len(equivalent)} equivalent).",
        "",
        "| mutant | block | bug | killed by |",
        "|---|---|---|---|",
    ]
    for r in results:
        if r.equivalent is not None:
            verdict = f"equivalent: {r.equivalent}"
            if r.status != "survived":
                verdict += f" (**but killed by `{r.killed_by}`**)"
        elif r.status == "survived":
            verdict = "**survived**"
        else:
            verdict = f"`{r.killed_by}`"
        bug = r.description.replace("|", "\\|")  # a bar would end the table cell
        lines.append(f"| `{r.id}` | {r.block} | {bug} | {verdict} |")
    return "\n".join(lines) + "\n"


def select(only: Sequence[str]) -> list[Mutant]:
    """Mutants whose id or block is in ``only`` (all when empty); unknown names fail."""
    if not only:
        return list(MUTANTS)
    known = {m.id for m in MUTANTS} | {m.block for m in MUTANTS}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise SystemExit(f"unknown mutant or block: {unknown}")
    return [m for m in MUTANTS if m.id in only or m.block in only]


def git_state(root: Path) -> tuple[str, bool]:
    """HEAD, and whether the working tree differs from it (the copies include the
    differences, so a result names both)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, check=True, capture_output=True, text=True
        ).stdout.strip()

    return git("rev-parse", "HEAD"), bool(git("status", "--porcelain"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="mutants run in parallel")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per mutant")
    parser.add_argument("--only", nargs="+", default=[], help="mutant ids or block names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="only check that all apply")
    parser.add_argument("--json", help=f"result file (default {DEFAULT_JSON} for a full run)")
    parser.add_argument("--markdown", help=f"table file (default {DEFAULT_MARKDOWN}, full run)")
    args = parser.parse_args(argv)
    mutants = select(args.only)
    check_all(mutants, ROOT)
    if args.list or args.check:
        for m in mutants:
            tag = "  [equivalent]" if m.equivalent else ""
            print(f"{m.id:48s} {m.file:28s} {m.description}{tag}")
        print(f"{len(mutants)} mutants apply")
        return 0
    full = not args.only
    json_path = args.json or (DEFAULT_JSON if full else None)
    md_path = args.markdown or (DEFAULT_MARKDOWN if full else None)
    jobs = max(1, min(args.jobs, len(mutants)))
    started = time.monotonic()
    results: dict[str, Result] = {}
    lock = threading.Lock()
    with copies(ROOT, jobs) as paths:
        check_copy_imports_itself(paths[0])
        print(f"baseline: the unmutated tests in a copy ({len(mutants)} mutants next)", flush=True)
        baseline(paths[0], mutants, args.timeout * 2)
        free = list(paths)

        def work(mutant: Mutant) -> None:
            with lock:
                copy = free.pop()
            try:
                result = run_mutant(mutant, copy, args.timeout)
            finally:
                with lock:
                    free.append(copy)
            with lock:
                results[mutant.id] = result
                verdict = result.killed_by or result.status
                done = f"[{len(results)}/{len(mutants)}]"
                print(f"{done} {mutant.id}: {verdict} ({result.seconds} s)", flush=True)

        pool = ThreadPoolExecutor(jobs)
        try:
            list(pool.map(work, mutants))
        finally:  # on Ctrl-C: start no further mutant
            pool.shutdown(cancel_futures=True)
    ordered = [results[m.id] for m in mutants]
    wall = round(time.monotonic() - started, 1)
    killed, total = score(ordered)
    table = markdown(ordered)
    print("\n" + table + f"\nwall time {wall} s with -j {jobs}")
    if json_path:
        commit, changed = git_state(ROOT)
        report = {
            "commit": commit,
            "uncommitted_changes": changed,
            "killed": killed,
            "non_equivalent": total,
            "equivalent": len(ordered) - total,
            "total": len(ordered),
            "jobs": jobs,
            "timeout_s": args.timeout,
            "wall_s": wall,
            "mutants": [asdict(r) for r in ordered],
        }
        Path(ROOT / json_path).write_text(json.dumps(report, indent=2) + "\n")
    if md_path:
        Path(ROOT / md_path).write_text(table)
    wrong = [r.id for r in ordered if r.equivalent is not None and r.status != "survived"]
    if wrong:
        print(f"killed although marked equivalent (fix the reason): {wrong}")
    return 0 if killed == total and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
