"""Every formal proof of the project, and the mutants that show each property can fail.

:data:`PROOFS` is the table of docs/formal.md: ``make formal`` runs all of it
(``python -m tests.formal``), ``make test`` the entries marked ``small``
(tests/test_formal.py). :data:`MUTANTS` pairs every asserted property with a mutated
copy of its block that breaks it: the harness, restricted to that property, must then
fail, which shows the property is not vacuous (an assumption that excludes every
interesting trace would let it pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from unittest import mock

from amaranth.lib import wiring

import rtl.accelerator
import rtl.dropout
import rtl.encoder
import rtl.host_bus
import rtl.neuron_core
import rtl.sequencer
import rtl.spike_scanner
import rtl.step_scanner
import rtl.update_unit
from desire.config import Config
from tests.formal.accelerator import AcceleratorHarness, tiny_config
from tests.formal.draws import DropoutHarness, RoundingHarness
from tests.formal.encoder import EncoderHarness
from tests.formal.host_bus import HostBusHarness
from tests.formal.mutants import mutant
from tests.formal.neuron_core import CoreHarness
from tests.formal.runner import Proof
from tests.formal.scanner import ScannerHarness
from tests.formal.step_scanner import StepScannerHarness

__all__ = ["MUTANTS", "PROOFS", "Mutant", "proof"]

_SMT = "smtbmc yices"
#: Dropout thresholds proved: the default config's (input and hidden layers) and the
#: extremes 1 and 2^16 - 1 of 16-bit probabilities.
_DROP_P = (1, *sorted(set(Config().fixed_drop_p()) - {0}), (1 << 16) - 1)
_PROB_BITS = Config().formats.prob_bits
_LR_SHIFT = Config().formats.lr_shift
#: The host bus's layout: two weight layers of 2 and 1 words of 2 lanes.
_DEPTHS, _LANES = (2, 1), 2


def _scanner(**kw: object) -> wiring.Component:
    return ScannerHarness(3, 2, **kw)


def _scanner_4x4(**kw: object) -> wiring.Component:
    return ScannerHarness(4, 4, **kw)


def _step_scanner(**kw: object) -> wiring.Component:
    return StepScannerHarness((3, 4, 2), 2, **kw)


def _step_scanner_memory(**kw: object) -> wiring.Component:
    return StepScannerHarness((3, 4, 2), 2, memory=True, **kw)


def _step_scanner_wide(**kw: object) -> wiring.Component:
    return StepScannerHarness((5, 3), 4, **kw)


def _encoder(**kw: object) -> wiring.Component:
    return EncoderHarness(5, 2, **kw)


def _host_bus(**kw: object) -> wiring.Component:
    return HostBusHarness(_DEPTHS, _LANES, membrane_bits=6, training=True, **kw)


def _host_bus_inference(**kw: object) -> wiring.Component:
    return HostBusHarness(_DEPTHS, _LANES, membrane_bits=6, training=False, **kw)


def _core(**kw: object) -> wiring.Component:
    return CoreHarness(((3, 2),), 1, tagged=False, **kw)


def _core_tagged(**kw: object) -> wiring.Component:
    return CoreHarness(((3, 2), (2, 2)), 1, tagged=True, **kw)


def _core_padded(**kw: object) -> wiring.Component:
    return CoreHarness(((3, 5),), 2, tagged=False, **kw)


def _core_tagged_3(**kw: object) -> wiring.Component:
    return CoreHarness(((3, 5), (4, 3), (2, 2)), 2, tagged=True, **kw)


def _dropout(**kw: object) -> wiring.Component:
    return DropoutHarness(_DROP_P, _PROB_BITS, **kw)


def _rounding(lanes: int, rounding: str) -> Callable[..., wiring.Component]:
    def build(**kw: object) -> wiring.Component:
        return RoundingHarness(lanes, 2, _LR_SHIFT, rounding, **kw)

    return build


def _accelerator(
    training: bool, architecture: str = "per-layer"
) -> Callable[..., wiring.Component]:
    def build(**kw: object) -> wiring.Component:
        return AcceleratorHarness(tiny_config(training=training, architecture=architecture), **kw)

    return build


_SCANNER, _CORE_1, _TAGGED = (
    "SpikeScanner 3x2",
    "NeuronCore 3-2, 1 lane",
    "NeuronCore 3-2, 2-2 tagged",
)
_STEP = "StepScanner 3-4-2 inputs, 2 bits per word"
_DROPOUT = f"DropoutMasks, drop_p {', '.join(map(str, _DROP_P))}"
_ROUNDING, _ACC = "UpdateUnit 1 lane, T 2, stochastic", "Accelerator 2-2-2, T 1, 1 lane"

PROOFS: tuple[Proof, ...] = (
    Proof(
        "scanner",
        _SCANNER,
        "every set bit once, lowest first; done; progress; stream rules",
        _scanner,
    ),
    Proof(
        "scanner_cover",
        _SCANNER,
        "a scan of 2+ bits with back-pressure ends",
        _scanner,
        mode="cover",
        engine=_SMT,
        depth=10,
    ),
    Proof("scanner_4x4", "SpikeScanner 4x4", "as scanner, 16 bits", _scanner_4x4, small=False),
    Proof(
        "step_scanner",
        _STEP,
        "per layer every set bit once, lowest first, then its fire; done; progress; stream rules",
        _step_scanner,
    ),
    Proof(
        "step_scanner_cover",
        _STEP,
        "a step with spikes in two layers and back-pressure ends",
        _step_scanner,
        mode="cover",
        engine=_SMT,
        depth=14,
    ),
    Proof(
        "step_scanner_memory",
        _STEP,
        "as step_scanner, the vectors read through a synchronous read port",
        _step_scanner_memory,
    ),
    Proof(
        "step_scanner_wide",
        "StepScanner 5-3 inputs, 4 bits per word",
        "as step_scanner, padded words",
        _step_scanner_wide,
        small=False,
    ),
    Proof(
        "encoder",
        "Encoder 5 pixels, 2 lanes",
        "words in order once per step; busy; no spike from dropped or padding pixels",
        _encoder,
    ),
    Proof(
        "encoder_cover",
        "Encoder 5 pixels, 2 lanes",
        "a spike in the last word",
        _encoder,
        mode="cover",
        engine=_SMT,
        depth=10,
    ),
    Proof(
        "host_bus",
        "HostBus 2 layers, training",
        "no write while busy; THRESHOLD and MODE ranges; ERR sticky until W1C",
        _host_bus,
    ),
    Proof(
        "host_bus_inference",
        "HostBus 2 layers, inference",
        "as host_bus; MODE stays INFERENCE",
        _host_bus_inference,
    ),
    Proof(
        "host_bus_cover",
        "HostBus 2 layers, training",
        "threshold write taken; each error bit read set twice",
        _host_bus,
        mode="cover",
        engine=_SMT,
        depth=12,
    ),
    Proof("core", _CORE_1, "no membrane hazard; events not ready during a pass", _core),
    Proof(
        "core_cover",
        _CORE_1,
        "an event WRITE_DISTANCE after the operation before",
        _core,
        mode="cover",
        engine=_SMT,
        depth=12,
    ),
    Proof(
        "core_tagged",
        _TAGGED,
        "as core, two layers; events not ready during a clear",
        _core_tagged,
    ),
    Proof(
        "core_tagged_cover",
        _TAGGED,
        "as core_cover",
        _core_tagged,
        mode="cover",
        engine=_SMT,
        depth=12,
    ),
    Proof(
        "core_padded",
        "NeuronCore 3-5, 2 lanes",
        "as core, three blocks, a padding lane",
        _core_padded,
        small=False,
    ),
    Proof(
        "core_tagged_3",
        "NeuronCore 3-5, 4-3, 2-2 tagged, 2 lanes",
        "as core_tagged, three layers",
        _core_tagged_3,
        small=False,
    ),
    Proof(
        "dropout",
        _DROPOUT,
        "keep iff the draw's top 16 bits >= drop_p, every 32-bit draw",
        _dropout,
    ),
    Proof(
        "dropout_cover",
        _DROPOUT,
        "per threshold: draw == drop_p kept, drop_p - 1 dropped",
        _dropout,
        mode="cover",
        engine=_SMT,
        depth=8,
    ),
    Proof(
        "rounding",
        _ROUNDING,
        "every new weight is golden's (Weyl offset, rounding, gate, saturation)",
        _rounding(1, "stochastic"),
        engine=_SMT,
        depth=10,
    ),
    Proof(
        "rounding_cover",
        _ROUNDING,
        "fraction + offset == 2^lr_shift, and one below",
        _rounding(1, "stochastic"),
        mode="cover",
        engine=_SMT,
        depth=10,
    ),
    Proof(
        "rounding_2_lanes",
        "UpdateUnit 2 lanes, T 2, stochastic",
        "as rounding; lane offsets j * 0x9E3779B9",
        _rounding(2, "stochastic"),
        engine=_SMT,
        depth=10,
        small=False,
    ),
    Proof(
        "rounding_nearest",
        "UpdateUnit 2 lanes, T 2, nearest",
        "as rounding, rnd = 2^(lr_shift-1)",
        _rounding(2, "nearest"),
        engine=_SMT,
        depth=10,
        small=False,
    ),
    Proof(
        "rounding_truncate",
        "UpdateUnit 2 lanes, T 2, truncate",
        "as rounding, rnd = 0",
        _rounding(2, "truncate"),
        engine=_SMT,
        depth=10,
        small=False,
    ),
    Proof(
        "accelerator",
        f"{_ACC}, inference",
        "result stream rules; the blocks' input rules hold",
        _accelerator(False),
    ),
    Proof(
        "accelerator_shared",
        f"{_ACC}, shared pool, training",
        "as accelerator: the step scanner, one core, the learning units",
        _accelerator(True, "shared"),
        small=False,
    ),
    Proof(
        "accelerator_training",
        f"{_ACC}, training",
        "as accelerator, with the learning units",
        _accelerator(True),
        small=False,
    ),
    Proof(
        "accelerator_cover",
        f"{_ACC}, inference",
        "a result waits for ready, then goes",
        _accelerator(False),
        mode="cover",
        engine=_SMT,
        depth=32,
        small=False,
    ),
)


def proof(name: str) -> Proof:
    """The entry of :data:`PROOFS` called ``name``."""
    for p in PROOFS:
        if p.name == name:
            return p
    raise KeyError(name)


@dataclass(frozen=True)
class Mutant:
    """``old`` replaced by ``new`` in class ``cls`` of ``module``: proof ``proof``,
    restricted to property ``breaks``, must fail on it. The mutant class goes into the
    harness as its ``block``, or, with ``patch`` (a module), replaces ``cls`` there
    while the harness is elaborated (a class the block under test builds itself)."""

    proof: str
    breaks: str
    module: ModuleType
    cls: str
    old: str
    new: str
    patch: ModuleType | None = None

    @contextmanager
    def harness(self) -> Iterator[wiring.Component]:
        """The proof's harness on the mutant; elaborate it inside the ``with``."""
        broken = mutant(self.module, self.cls, self.old, self.new)
        build = proof(self.proof).build
        if self.patch is None:
            yield build(block=broken, only=self.breaks)
        else:
            with mock.patch.object(self.patch, self.cls, broken):
                yield build(only=self.breaks)


_SCAN, _STEP_SCAN, _CORE = rtl.spike_scanner, rtl.step_scanner, rtl.neuron_core
_SEQ_RESULT = (
    '            with m.State("RESULT"):\n                m.d.comb += self.result_valid.eq(1)\n'
)
_SEQ_WAIT = '            with m.State("WAIT"):\n                m.d.comb += self.busy.eq(1)\n'
_SEQ_FIRE = "with m.If(running & ~fired[l] & self.scan_done[l] & idle):"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "scanner",
        "offer is the lowest index not yet taken",
        _SCAN,
        "SpikeScanner",
        "for j in reversed(range(w)):",
        "for j in range(w):",
    ),
    Mutant(
        "scanner",
        "done only after every set bit",
        _SCAN,
        "SpikeScanner",
        "(mask == 0) & ~self.events.valid)",
        "(mask == 0))",
    ),
    Mutant(
        "scanner",
        "scan keeps going",
        _SCAN,
        "SpikeScanner",
        "with m.If((rest == 0) & (ptr != self._words)):",
        "with m.If((rest == 0) & (ptr != self._words) & self.events.ready):",
    ),
    Mutant(
        "scanner",
        "stream valid held",
        _SCAN,
        "SpikeScanner",
        "        with m.If(self.start):\n",
        "        with m.If(~self.events.ready):\n"
        "            m.d.sync += self.events.valid.eq(0)\n"
        "        with m.If(self.start):\n",
    ),
    Mutant(
        "scanner",
        "stream payload held",
        _SCAN,
        "SpikeScanner",
        "with m.If(take):",
        "with m.If(take | (mask != 0)):",
    ),
    Mutant(
        "step_scanner",
        "offer is the next operation",
        _STEP_SCAN,
        "StepScanner",
        "ops.payload.fire.eq(mask == 0),",
        "ops.payload.fire.eq(~fire),",
    ),
    Mutant(
        "step_scanner",
        "offer is the next operation",
        _STEP_SCAN,
        "StepScanner",
        "ops.payload.layer.eq(layer),",
        "ops.payload.layer.eq(0),",
    ),
    Mutant(
        "step_scanner_memory",
        "offer is the next operation",
        _STEP_SCAN,
        "StepScanner",
        "m.d.comb += self.read_word.eq(word_next)",
        "m.d.comb += self.read_word.eq(word)",  # the read port's word one cycle late
    ),
    Mutant(
        "step_scanner",
        "done only after everything",
        _STEP_SCAN,
        "StepScanner",
        "(mask == 0) & ~fire & ~ops.valid)",
        "(mask == 0) & ~ops.valid)",
    ),
    Mutant(
        "step_scanner",
        "scan keeps going",
        _STEP_SCAN,
        "StepScanner",
        "with m.If((rest_mask == 0) & ~rest_fire & (ptr != n_items)):",
        "with m.If((rest_mask == 0) & ~rest_fire & (ptr != n_items) & ops.ready):",
    ),
    Mutant(
        "step_scanner",
        "stream valid held",
        _STEP_SCAN,
        "StepScanner",
        "        with m.If(self.start):\n",
        "        with m.If(~ops.ready):\n"
        "            m.d.sync += ops.valid.eq(0)\n"
        "        with m.If(self.start):\n",
    ),
    Mutant(
        "step_scanner",
        "stream payload held",
        _STEP_SCAN,
        "StepScanner",
        "with m.If(take):",
        "with m.If(take | (mask != 0)):",
    ),
    Mutant(
        "encoder",
        "words in order, once per step",
        rtl.encoder,
        "Encoder",
        "with m.If(word == self._words - 1):",
        "with m.If(word == self._words - 2):",
    ),
    Mutant(
        "encoder",
        "busy from start to the last word",
        rtl.encoder,
        "Encoder",
        "running | s1_valid | s2_valid | s3_valid | self.spk_valid",
        "running | s1_valid | s2_valid | s3_valid",
    ),
    Mutant(
        "encoder",
        "no spike from a dropped or padding pixel",
        rtl.encoder,
        "Encoder",
        "fires.append(fire & keep3[j])",
        "fires.append(fire)",
    ),
    Mutant(
        "host_bus",
        "no weight write while busy",
        rtl.host_bus,
        "HostBus",
        "Mux(bus.we & is_weight & ~self.busy, Cat(*in_layer), 0)",
        "Mux(bus.we & is_weight, Cat(*in_layer), 0)",
    ),
    Mutant(
        "host_bus",
        "THRESHOLD, MODE, LR_INT held while busy",
        rtl.host_bus,
        "HostBus",
        "                with m.If(self.busy):\n                    m.d.sync += err_busy.eq(1)\n"
        "                with m.Else():\n                    m.d.sync += self.lr_int.eq(bus.wdata)",
        "                m.d.sync += self.lr_int.eq(bus.wdata)",
    ),
    Mutant(
        "host_bus",
        "THRESHOLD write in range or ignored",
        rtl.host_bus,
        "HostBus",
        "thr_ok = (wdata > 0) & (wdata <= self._thr_hi)",
        "thr_ok = wdata > 0",
    ),
    Mutant(
        "host_bus",
        "THRESHOLD in range",
        rtl.host_bus,
        "HostBus",
        "thr_ok = (wdata > 0) & (wdata <= self._thr_hi)",
        "thr_ok = wdata >= 0",
    ),
    Mutant(
        "host_bus",
        "MODE write in range or ignored",
        rtl.host_bus,
        "HostBus",
        "with m.Elif(bus.wdata > mode_max):",
        "with m.Elif(bus.wdata > mode_max + 1):",
    ),
    Mutant(
        "host_bus",
        "ERR_BUSY sticky until W1C",
        rtl.host_bus,
        "HostBus",
        "with m.If(bus.wdata & Status.ERR_BUSY):",
        "with m.If(bus.wdata != 0):",
    ),
    Mutant(
        "host_bus",
        "ERR_WRITE sticky until W1C",
        rtl.host_bus,
        "HostBus",
        "with m.If(bus.wdata & Status.ERR_WRITE):",
        "with m.If(bus.wdata != 0):",
    ),
    Mutant(
        "core",
        "no write-back to a word within WRITE_DISTANCE of the last",
        _CORE,
        "NeuronCore",
        "WRITE_DISTANCE = 4",
        "WRITE_DISTANCE = 3",
    ),
    Mutant(
        "core_tagged",
        "no write-back to a word within WRITE_DISTANCE of the last",
        _CORE,
        "NeuronCore",
        "WRITE_DISTANCE = 4",
        "WRITE_DISTANCE = 3",
    ),
    Mutant(
        "core",
        "write-back WRITE_DISTANCE after its read",
        _CORE,
        "NeuronCore",
        "m.d.comb += v_rd.addr.eq(words[lat - 3])",
        "m.d.comb += v_rd.addr.eq(words[lat - 2])",
    ),
    Mutant(
        "core",
        "events not ready during a pass",
        _CORE,
        "NeuronCore",
        "draining |= (busy & op_fire) | Cat(*(stage[1] for stage in ops)).any()",
        "draining |= busy & op_fire",
    ),
    Mutant(
        "core_tagged",
        "events not ready during a pass",
        _CORE,
        "NeuronCore",
        "draining = (busy & op_clear) | Cat(*(stage[2] for stage in ops)).any()",
        "draining = busy & op_clear",
    ),
    Mutant(
        "dropout",
        "keep bit is golden's rule",
        rtl.dropout,
        "DropoutMasks",
        "m.d.sync += mask.eq(Cat(mask[1:], top >= p))",
        "m.d.sync += mask.eq(Cat(mask[1:], top > p))",
    ),
    Mutant(
        "rounding",
        "weight is golden's update",
        rtl.update_unit,
        "UpdateUnit",
        "m.d.sync += mag.eq((prod + rnd_reg) >> shift)",
        "m.d.sync += mag.eq((prod + rnd_reg - 1) >> shift)",
    ),
    Mutant(
        "accelerator",
        "stream valid held",
        rtl.sequencer,
        "Sequencer",
        '                with m.If(self.result_ready):\n                    m.next = "IDLE"',
        '                m.next = "IDLE"',
        patch=rtl.accelerator,
    ),
    Mutant(
        "accelerator",
        "stream payload held",
        rtl.sequencer,
        "Sequencer",
        _SEQ_RESULT,
        _SEQ_RESULT + "                m.d.comb += self.argmax.eq(1)\n",
        patch=rtl.accelerator,
    ),
    Mutant(
        "accelerator",
        "core events keep the stream rules",
        rtl.accelerator,
        "Accelerator",
        "core.events.payload.eq(scan.events.payload),",
        "core.events.payload.eq(Mux(core.events.ready, scan.events.payload, 0)),",
    ),
    Mutant(
        "accelerator",
        "core driven only while idle",
        rtl.sequencer,
        "Sequencer",
        _SEQ_FIRE,
        _SEQ_FIRE.replace(" & idle", ""),
        patch=rtl.accelerator,
    ),
    Mutant(
        "accelerator",
        "pixels written only while the encoder is idle",
        rtl.sequencer,
        "Sequencer",
        _SEQ_WAIT,
        _SEQ_WAIT + "                m.d.comb += self.pix_we.eq(1)\n",
        patch=rtl.accelerator,
    ),
)
