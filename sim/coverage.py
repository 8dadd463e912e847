"""Functional coverage of the cocotb benches, with cocotb-coverage.

Random stimulus leaves the boundaries alone: a membrane exactly at its threshold, a
weight at its rail, a tie between outputs, a result held by back-pressure. Each bench
samples the values its scoreboard (golden/) computes into cover points declared here,
one group per block, and its last test writes the group to the file named by
``$DESIRE_COVERAGE`` (the runner sets it). :func:`merge` adds up the files of a
regression (cocotb-coverage's own merge) and lists every bin never hit: the regression
fails on any, so a bin that the stimulus stops reaching is noticed.

A group is declared when its bench first asks for it (:func:`points`), so that a run
holds only its own block's points.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cocotb_coverage.coverage import CoverPoint, coverage_db, merge_coverage

__all__ = ["ENV_COVERAGE", "Report", "merge", "points", "save"]

#: Environment variable naming the YAML file a bench's coverage is written to.
ENV_COVERAGE = "DESIRE_COVERAGE"
Sampler = Callable[..., None]


def compare(a: int, b: int) -> str:
    return "below" if a < b else "equal" if a == b else "above"


def rail(value: int, lo: int, hi: int) -> str:
    return "min" if value <= lo else "max" if value >= hi else "inside"


def _neuron_core() -> dict[str, Sampler]:
    @CoverPoint(
        "neuron_core.membrane_vs_threshold",
        xf=lambda v, thr, kept: compare(v, thr),
        bins=["below", "equal", "above"],
    )
    @CoverPoint(
        "neuron_core.dropout",
        xf=lambda v, thr, kept: (
            "kept" if kept else "dropped, at or above" if v >= thr else "dropped"
        ),
        bins=["kept", "dropped", "dropped, at or above"],
    )
    def neuron(v: int, thr: int, kept: bool) -> None:
        """One neuron at a fire pass: its membrane before the reset."""

    @CoverPoint("neuron_core.membrane_rail", xf=rail, bins=["min", "inside", "max"])
    def membrane(value: int, lo: int, hi: int) -> None:
        """A membrane after integration, against the membrane format's rails."""

    @CoverPoint("neuron_core.weight_rail", xf=rail, bins=["min", "inside", "max"])
    def weight(value: int, lo: int, hi: int) -> None:
        """A loaded weight against the weight format's rails."""

    @CoverPoint(
        "neuron_core.blocks",
        xf=lambda blocks: "one" if blocks == 1 else "several",
        bins=["one", "several"],
    )
    def layer(blocks: int) -> None:
        """The layer a build serves: one lane block of neurons or several."""

    return {"neuron": neuron, "membrane": membrane, "weight": weight, "layer": layer}


def _desire_unit() -> dict[str, Sampler]:
    @CoverPoint(
        "desire_unit.output_count_vs_bound",
        xf=lambda kind, count, bound: f"{kind} {compare(count, bound)}",
        bins=[f"{k} {c}" for k in ("label", "other") for c in ("below", "equal", "above")],
    )
    def output_count(kind: str, count: int, bound: int) -> None:
        """An output neuron's spike count against the bound of its desire: the label
        neuron is desired below ``out_label_below``, another above ``out_other_above``."""

    @CoverPoint(
        "desire_unit.desire",
        xf=lambda layer, d: f"{layer} {d:+d}",
        bins=[f"{layer} {d:+d}" for layer in ("output", "hidden") for d in (-1, 0, 1)],
    )
    def desire(layer: str, d: int) -> None:
        """A ternary desire produced, per kind of layer."""

    @CoverPoint(
        "desire_unit.hidden_sum_vs_threshold",
        xf=lambda s, thr: compare(abs(s), thr),
        bins=["below", "equal", "above"],
    )
    @CoverPoint(
        "desire_unit.hidden_sum_sign",
        xf=lambda s, thr: "negative" if s < 0 else "zero" if s == 0 else "positive",
        bins=["negative", "zero", "positive"],
    )
    def hidden_sum(s: int, thr: int) -> None:
        """A hidden neuron's backpropagated sum S (a tie at 0 gives sign -1)."""

    return {"output_count": output_count, "desire": desire, "hidden_sum": hidden_sum}


def _update_unit() -> dict[str, Sampler]:
    @CoverPoint("update_unit.gate", xf=lambda g: g, bins=[-1, 0, 1])
    def gate(g: int) -> None:
        """A neuron's desire gate on its row update."""

    @CoverPoint("update_unit.weight_rail", xf=rail, bins=["min", "inside", "max"])
    def weight(value: int, lo: int, hi: int) -> None:
        """An updated weight against the weight format's rails (saturation)."""

    @CoverPoint(
        "update_unit.row",
        xf=lambda spikes: "silent" if spikes == 0 else "spiking",
        bins=["silent", "spiking"],
    )
    def row(spikes: int) -> None:
        """A row's input spike count: a silent row must stay unchanged."""

    @CoverPoint(
        "update_unit.trace",
        xf=lambda trace, trace_max: "clamped" if trace >= trace_max else "below the clamp",
        bins=["below the clamp", "clamped"],
    )
    def trace(trace: int, trace_max: int) -> None:
        """A spike trace the unit rebuilds from a row's input train, against the trace
        format's clamp (reached only by configs whose traces saturate above it)."""

    @CoverPoint(
        "update_unit.blocks",
        xf=lambda blocks: "one" if blocks == 1 else "several",
        bins=["one", "several"],
    )
    def blocks(blocks: int) -> None:
        """Lane blocks per row: one block makes the next row load overlap the word."""

    return {"gate": gate, "weight": weight, "row": row, "blocks": blocks, "trace": trace}


def _accelerator() -> dict[str, Sampler]:
    @CoverPoint(
        "accelerator.argmax", xf=lambda tie: "tie" if tie else "strict", bins=["strict", "tie"]
    )
    def argmax(tie: bool) -> None:
        """A sample's arg-max: a strict maximum or a tie (class invalid)."""

    @CoverPoint(
        "accelerator.result_backpressure",
        xf=lambda stall: "held" if stall else "taken",
        bins=["taken", "held"],
    )
    def result(stall: int) -> None:
        """A result transfer: taken at once, or held by ``ready`` low while valid."""

    @CoverPoint(
        "accelerator.register_edge",
        xf=lambda register, edge: f"{register} {edge}",
        bins=[
            *(f"THRESHOLD {e}" for e in ("zero", "min", "max", "above max", "negative")),
            *(f"MODE {e}" for e in ("max", "above max")),
        ],
    )
    def register_edge(register: str, edge: str) -> None:
        """A write at a range edge of a checked register (taken inside the range, refused
        with ERR_WRITE outside it)."""

    return {"argmax": argmax, "result": result, "register_edge": register_edge}


def _accelerator_dropout() -> dict[str, Sampler]:
    """Declared only by a training build whose input layer has dropout (the bins would be
    holes elsewhere)."""

    @CoverPoint(
        "accelerator.dropout_draw",
        xf=lambda draw, p: compare(draw, p),
        bins=["below", "equal", "above"],
    )
    def dropout_draw(draw: int, p: int) -> None:
        """A dropout draw against its layer's probability: below drops the neuron; equal
        (the boundary, reached by :func:`sim.runner.boundary_dropout`'s seed) keeps it."""

    return {"dropout_draw": dropout_draw}


def _axi_shell() -> dict[str, Sampler]:
    @CoverPoint(
        "axi_shell.frame",
        xf=lambda length, n_in: compare(length, n_in),
        bins=["below", "equal", "above"],
    )
    def frame(length: int, n_in: int) -> None:
        """A pixel frame's length against the sample's: short and long ones set ERR_FRAME."""

    @CoverPoint(
        "axi_shell.register_write",
        xf=lambda resp: "slverr" if resp else "okay",
        bins=["okay", "slverr"],
    )
    def register_write(resp: int) -> None:
        """An AXI4-Lite register write's response: OKAY, or SLVERR (partial strobes)."""

    @CoverPoint("axi_shell.irq", xf=lambda level: level, bins=[0, 1])
    def irq(level: int) -> None:
        """The interrupt line seen low and high."""

    return {"frame": frame, "register_write": register_write, "irq": irq}


GROUPS: dict[str, Callable[[], dict[str, Sampler]]] = {
    "axi_shell": _axi_shell,
    "neuron_core": _neuron_core,
    "desire_unit": _desire_unit,
    "update_unit": _update_unit,
    "accelerator": _accelerator,
    "accelerator_dropout": _accelerator_dropout,
}


@functools.cache
def points(block: str) -> dict[str, Sampler]:
    """The samplers of ``block``'s cover points, declared on the first call."""
    return GROUPS[block]()


def save() -> Path | None:
    """Write every point declared in this process to ``$DESIRE_COVERAGE`` (if set)."""
    target = os.environ.get(ENV_COVERAGE)
    if not target:
        return None
    coverage_db.export_to_yaml(filename=target)
    return Path(target)


@dataclass(frozen=True)
class Report:
    """Merged coverage: hits per bin of every point, and the bins never hit."""

    hits: dict[str, dict[Any, int]]

    @property
    def holes(self) -> list[str]:
        return [f"{p}: {b}" for p, bins in self.hits.items() for b, n in bins.items() if not n]

    def __str__(self) -> str:
        lines = []
        for point, bins in sorted(self.hits.items()):
            hit = sum(1 for n in bins.values() if n)
            shown = ", ".join(f"{b} {n}" for b, n in bins.items())
            lines.append(f"  {point:<42} {hit}/{len(bins)}  [{shown}]")
        return "\n".join(lines)


def merge(files: Sequence[Path]) -> Report:
    """Add up the coverage files of several runs (cocotb-coverage's merge)."""
    files = [f for f in files if f.is_file()]
    if not files:
        return Report({})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "merged.yml"
        merge_coverage(lambda *_: None, str(out), *map(str, files))
        db = yaml.safe_load(out.read_text(encoding="utf-8"))
    return Report({k: dict(v["bins:_hits"]) for k, v in db.items() if "bins:_hits" in v})
