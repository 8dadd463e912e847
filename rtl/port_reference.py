"""The accelerator top's ports, described from its Amaranth signature: ``ports.md`` and
``ports.json`` beside the Verilog (:func:`rtl.verilog.build`).

Generated, never written by hand, so the reference cannot drift from the RTL: each
top-level port as it appears in the Verilog (``pixels__valid``, ``result__payload``), its
direction, width, value after reset (read from a short simulation, which also gets the
combinational outputs right), polarity, meaning (the signature's docstrings) and the bit
layout of packed struct payloads.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from amaranth.hdl import ClockDomain, Shape, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator, SimulatorContext

__all__ = ["Field", "Port", "port_reference", "ports_json", "ports_markdown"]


@dataclass(frozen=True)
class Field:
    """One leaf field of a packed struct port: bits ``[lsb + width - 1 : lsb]``."""

    name: str
    lsb: int
    width: int

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1


@dataclass(frozen=True)
class Port:
    """One port of a top module as the Verilog spells it; ``direction`` as seen from the top.

    ``reset`` is an output's value after reset with every input low (None for inputs);
    ``fields`` is the bit layout of a packed struct port.
    """

    name: str
    direction: str
    width: int
    reset: int | None
    polarity: str
    meaning: str
    fields: tuple[Field, ...] = ()


_DOC_ENTRY = re.compile(r"^(\w+) : ")
_DOC_MARKUP = re.compile(r":\w+:`~?\.?([^`]*)`|``([^`]*)``")
_DOC_SECTIONS = ("Members", "Ports")


def _member_docs(cls: type) -> dict[str, str]:
    """First sentence of each member's text in ``cls``' numpydoc "Members"/"Ports" section.

    Why parse docstrings: they are where the signatures (ours and Amaranth's) say
    what a member means, so the port table quotes the source instead of a copy.
    """
    lines = (inspect.getdoc(cls) or "").splitlines()
    docs: dict[str, str] = {}
    current, in_section = None, False
    for i, line in enumerate(lines):
        underline = i + 1 < len(lines) and lines[i + 1].strip() and set(lines[i + 1]) == {"-"}
        if underline and line.strip():
            in_section, current = line.strip() in _DOC_SECTIONS, None
        elif in_section and (entry := _DOC_ENTRY.match(line)):
            current = entry[1]
            docs[current] = ""
        elif current is not None and line.startswith(" "):
            docs[current] += " " + line.strip()
        elif line.strip():
            current = None
    return {name: _first_sentence(text) for name, text in docs.items() if text}


def _first_sentence(text: str) -> str:
    plain = _DOC_MARKUP.sub(lambda m: m[1] or m[2], text).strip()
    return re.split(r"(?<=\.)\s+(?=[A-Z])", plain, maxsplit=1)[0]


def _unflipped(sig: wiring.Signature) -> wiring.Signature:
    return sig.flip() if isinstance(sig, wiring.FlippedSignature) else sig


def _meaning(top: wiring.Component, path: tuple[str, ...]) -> str:
    """The docs of every member along ``path`` (e.g. ``bus``, then ``addr``), joined."""
    parts = []
    owner: type = type(top)
    sig: wiring.Signature = top.signature
    for key in path:
        if doc := _member_docs(owner).get(key):
            parts.append(doc)
        member = sig.members[key]
        if member.is_port:
            break
        sig = member.signature
        owner = type(_unflipped(sig))
    return " ".join(parts)


def _field_name(prefix: str, key: str | int) -> str:
    """``counts[3]`` for an array element, ``outer.inner`` for a nested struct field."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _fields(layout: data.Layout, prefix: str = "", offset: int = 0) -> Iterator[Field]:
    """Leaf fields of ``layout`` with their absolute bit offsets (arrays as ``name[i]``)."""
    for key, field in layout:
        name = _field_name(prefix, key)
        if isinstance(field.shape, data.Layout):
            yield from _fields(field.shape, name, offset + field.offset)
        else:
            yield Field(name, offset + field.offset, field.width)


def _polarity(shape: object, width: int) -> str:
    if isinstance(shape, data.Layout):
        return "packed struct (fields below)"
    if width == 1:
        return "active high, level"
    return "signed" if Shape.cast(shape).signed else "unsigned"


def _values_after_reset(top: wiring.Component) -> dict[str, int]:
    """Each output's value after reset with every input low, from an Amaranth simulation.

    Why simulate instead of reading the signals' ``init``: a combinational output
    (the pixel stream's ``ready``) has the value its logic gives, not its init.
    """
    outputs = [Value.cast(v) for _, m, v in top.signature.flatten(top) if m.flow == Out]
    values: dict[str, int] = {}

    async def bench(ctx: SimulatorContext) -> None:
        for sig in outputs:
            values[sig.name] = ctx.get(sig)

    sim = Simulator(top)
    sim.add_testbench(bench)
    sim.run()
    return values


def _clock_ports() -> list[Port]:
    """``clk`` and ``rst`` of the ``sync`` domain, which Amaranth adds beside the signature."""
    domain = ClockDomain("sync")
    edge = "rising" if domain.clk_edge == "pos" else "falling"
    kind = "asynchronous" if domain.async_reset else "synchronous"
    return [
        Port(domain.clk.name, "input", 1, None, f"{edge} edge", "Clock of every register."),
        Port(
            domain.rst.name,
            "input",
            1,
            None,
            f"active high, {kind}",
            "Reset: puts every register (not memory contents) to its initial value.",
        ),
    ]


def port_reference(top: wiring.Component) -> list[Port]:
    """Every port of ``top`` in Verilog spelling, clock and reset first.

    Generated from ``top``'s signature (names, directions, widths, struct layouts,
    the member docs of its class and of the signatures' classes) and a simulation
    (values after reset), so the reference follows every change of the RTL.
    """
    after_reset = _values_after_reset(top)
    ports = _clock_ports()
    for path, member, value in top.signature.flatten(top):
        sig = Value.cast(value)
        shape = member.shape
        ports.append(
            Port(
                name=sig.name,
                direction="output" if member.flow == Out else "input",
                width=len(sig),
                reset=after_reset.get(sig.name),
                polarity=_polarity(shape, len(sig)),
                meaning=_meaning(top, path),
                fields=tuple(_fields(shape)) if isinstance(shape, data.Layout) else (),
            )
        )
    return ports


def _streams(top: wiring.Component) -> list[str]:
    """Top-level members of ``top`` that are Amaranth streams."""
    return [
        name
        for name, member in top.signature.members.items()
        if member.is_signature and isinstance(_unflipped(member.signature), stream.Signature)
    ]


def _bits(width: int, lsb: int = 0) -> str:
    return f"[{lsb + width - 1}:{lsb}]"


def ports_markdown(top: wiring.Component, ports: list[Port], name: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    streams = ", ".join(f"`{s}`" for s in _streams(top))
    rule = (
        f"Streams ({streams}): the payload moves on a rising `clk` edge at which `valid` and "
        "`ready` are both high (amaranth.lib.stream). "
        if streams
        else ""
    )
    lines = [
        f"# Ports of `{name}` ({name}.v)",
        "",
        f"Generated by rtl.verilog from the Amaranth signature of `{_qualname(top)}` "
        "(member texts from its docstrings) for the config in config.json; ports.json holds "
        "the same data. Direction: seen from the top. After reset: an output's value "
        "after reset with every input low (an Amaranth simulation of this top). "
        f"{rule}Protocol and register map: docs/architecture.md, *Host interface*.",
        "",
        "| port | direction | width | after reset | polarity | meaning |",
        "|---|---|---:|---|---|---|",
    ]
    for p in ports:
        reset = "" if p.reset is None else (f"0x{p.reset:x}" if p.width > 1 else str(p.reset))
        lines.append(
            f"| `{p.name}{_bits(p.width) if p.width > 1 else ''}` | {p.direction} | {p.width} "
            f"| {reset} | {p.polarity} | {cell(p.meaning)} |"
        )
    for p in ports:
        if p.fields:
            lines += ["", f"## `{p.name}{_bits(p.width)}` fields", "", "| bits | field | width |"]
            lines.append("|---|---|---:|")
            lines += [f"| {_bits(f.width, f.lsb)} | `{f.name}` | {f.width} |" for f in p.fields]
    return "\n".join(lines) + "\n"


def ports_json(top: wiring.Component, ports: list[Port], name: str) -> str:
    entries = []
    for p in ports:
        entry = asdict(p)
        entry["fields"] = [{**asdict(f), "msb": f.msb} for f in p.fields]
        entries.append(entry)
    doc = {"module": name, "file": f"{name}.v", "source": _qualname(top), "ports": entries}
    return json.dumps(doc, indent=2) + "\n"


def _qualname(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
