"""A Verilog test harness around a DUT: the clock, and players that drive bulk transfers.

Why: a cocotb driver that changes an input every clock wakes Python every clock,
and a wake-up (a ``RisingEdge``, 4 us of CPU under Verilator; 7.5 us with a
``ReadOnly``) costs several times the simulation of a whole cycle of the
784-32-10 accelerator (1.6 us). The harness moves the per-cycle work of bulk
transfers into the simulator: Python writes a whole transfer at once into a
wide register of the harness, raises ``go`` and waits for ``done``. The DUT
still gets every item through its own ports, one per cycle, with the timing the
Python drivers gave it (docs/verification.md, section 8).

The harness module ``<top>_tb`` has every port of the DUT under the same name
except ``clk``, which it makes itself, so the ordinary drivers (sim.drivers) and
direct pin accesses keep working: while a player is idle the DUT's inputs are the
harness's ports. Two kinds of player, each named by the prefix ``<p>`` of the DUT
ports it drives, with the registers ``tb_<p>...`` that Python reads and writes:

- stream source (:class:`Stream`, an Amaranth stream input ``<p>payload/valid/ready``):
  ``tb_<p>data`` (payload k in slot k), ``tb_<p>count``, ``tb_<p>go``,
  ``tb_<p>done``; payload k is offered until the DUT takes it (``ready``).
- sequence (:class:`Sequence`, any inputs ``<p><field>`` driven together, one command
  per cycle: a bus, a memory write port): ``tb_<p>cmd`` (command k = the fields
  concatenated, the first field most significant, in slot k), ``tb_<p>count``,
  ``tb_<p>go``, ``tb_<p>done``; with a ``capture`` output also ``tb_<p>captured``
  (its value ``latency`` cycles after command k, in slot k): pipelined bus reads.

Slot k of a register is its bits ``[k S, k S + W)``, ``W`` the item's width and
``S`` = :func:`slot_bits` (W) the next of 8, 16, 32, 64 bits. The registers are
internal, not ports: Verilator copies every input port into the model on each
evaluation, which for these wide vectors took 7 % of the run.

A third player, :class:`Uart`, is a serial line pair for a DUT with a UART (the host
link): the bytes Python puts in a ring ``tb_<rx>data`` (write counter ``tb_<rx>wr``, set
by Python; ``tb_<rx>rd``, the bytes taken, set by the harness) go out on the DUT's input
``<rx>`` at ``divisor`` cycles per bit, 8N1, back to back; the DUT's output ``<tx>`` is
decoded the same way into the ring ``tb_<tx>data`` (``tb_<tx>count`` bytes so far; a
byte whose stop bit is 0 counts in ``tb_<tx>errors`` instead). Python polls the counters
every few hundred cycles, so a byte costs no wake-up of its own (docs/host.md).

Protocol of the stream and sequence players: with ``go`` low the player is idle (its
index returns to 0 at the next edge); ``go`` high plays items ``0 .. count - 1``;
``done`` is high once all are taken (and all captures made) until ``go`` falls.
sim.drivers.StreamPlayer and SequencePlayer speak it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence as Seq
from dataclasses import dataclass

from desire.config import Config
from rtl.accelerator import READ_LATENCY
from rtl.verilog import HOST_LINK_DIVISOR

__all__ = [
    "CLOCK_NS",
    "SEQUENCE_DEPTH",
    "UART_DEPTH",
    "Harness",
    "Port",
    "Sequence",
    "Stream",
    "Uart",
    "block_players",
    "harness",
    "harness_name",
    "ports",
    "slot_bits",
]

#: Clock period of the harness's clock in ns (the benches count cycles as ns / 10).
CLOCK_NS = 10

#: Commands per transfer of a sequence player: enough that a weight load needs few Python
#: wake-ups (25 408 bus writes on the CI config: 50 transfers), few enough that the
#: command port (512 x 50 bits on the bus) stays a cheap vector in both simulators.
SEQUENCE_DEPTH = 512

#: Bytes of each ring of a UART player: the receiver's ring must hold what arrives between
#: two polls of Python (sim/test_host_link.py polls every few hundred cycles; a byte takes
#: ``10 * divisor`` cycles), and a small ring is a cheap vector to read.
UART_DEPTH = 256


@dataclass(frozen=True)
class Port:
    """One port of a Verilog module: direction (``input``/``output``), name and width."""

    direction: str
    name: str
    width: int


@dataclass(frozen=True)
class Stream:
    """A stream source on the DUT inputs ``<prefix>payload/valid`` (``ready`` an output);
    ``depth``: the most payloads of one transfer."""

    prefix: str
    depth: int


@dataclass(frozen=True)
class Sequence:
    """A player of commands over the DUT inputs ``<prefix><field>``, one command per cycle.

    ``depth``: commands per transfer (longer lists take several transfers).
    ``capture``: an output whose value ``latency`` cycles after each command is kept.
    """

    prefix: str
    fields: tuple[str, ...]
    depth: int
    capture: str | None = None
    latency: int = 0


@dataclass(frozen=True)
class Uart:
    """Serial lines of a DUT's UART: a transmitter on the input ``rx`` and a receiver on
    the output ``tx``, ``divisor`` clock cycles per bit (8N1, idle high), each with a
    ring of ``depth`` bytes (a power of two) between the harness and Python."""

    rx: str
    tx: str
    divisor: int
    depth: int


_PORT = re.compile(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?([A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


def ports(verilog: str, module: str) -> list[Port]:
    """The ports of ``module`` in ``verilog`` (yosys's ``input [N:0] name;`` declarations)."""
    head = re.search(rf"^module {re.escape(module)}\(", verilog, re.M)
    if head is None:
        raise ValueError(f"no module {module} in the Verilog")
    body = verilog[head.end() : verilog.index("\nendmodule", head.end())]
    found = [Port(d, name, int(msb) + 1 if msb else 1) for d, msb, name in _PORT.findall(body)]
    if not found:
        raise ValueError(f"module {module} declares no ports")
    return found


def slot_bits(width: int) -> int:
    """Bits an item of ``width`` bits takes in a player's wide port: 8, 16, 32 or 64.

    Why whole bytes: Python packs a transfer with numpy (``tobytes``) instead of a
    loop over the items, which took longer than simulating them.
    """
    for slot in (8, 16, 32, 64):
        if width <= slot:
            return slot
    raise ValueError(f"a player's item is at most 64 bits wide, not {width}")


def harness_name(top: str) -> str:
    """Name of the harness module around ``top``."""
    return f"{top}_tb"


def _vec(width: int) -> str:
    return f"[{width - 1}:0] " if width > 1 else ""


class _Module:
    """Lines, player signals and DUT-input drivers of the harness, filled by the players."""

    def __init__(self, by_name: dict[str, Port]) -> None:
        self.by_name = by_name
        self.lines: list[str] = []
        self.signals: list[str] = []
        self.drives: dict[str, str] = {}

    def signal(self, kind: str, name: str, width: int, value: str = "") -> None:
        """A signal Python reads or writes (public in Verilator builds)."""
        self.signals.append(name)
        self.lines.append(f"  {kind} {_vec(width)}{name}{value};")

    def width(self, name: str) -> int:
        if name not in self.by_name:
            raise ValueError(f"the DUT has no port {name}")
        return self.by_name[name].width

    def controls(self, p: str, cw: int) -> None:
        self.signal("reg", f"tb_{p}count", cw, " = 0")
        self.signal("reg", f"tb_{p}go", 1, " = 0")
        self.signal("wire", f"tb_{p}done", 1)
        self.lines += [
            f"  reg {_vec(cw)}tb_{p}idx = 0;",
            f"  wire tb_{p}on = tb_{p}go && tb_{p}idx != tb_{p}count;",
        ]

    def stream(self, s: Stream) -> None:
        p, w, cw = s.prefix, self.width(f"{s.prefix}payload"), s.depth.bit_length()
        slot = slot_bits(w)
        for name in ("valid", "ready"):
            self.width(f"{p}{name}")
        self.lines.append(f"  // stream source {p}: payload k of tb_{p}data k-th, each when ready")
        self.signal("reg", f"tb_{p}data", s.depth * slot, " = 0")
        self.controls(p, cw)
        self.lines += [
            f"  assign tb_{p}done = tb_{p}go && tb_{p}idx == tb_{p}count;",
            "  always @(posedge clk)",
            f"    tb_{p}idx <= !tb_{p}go ? {cw}'d0 : tb_{p}on && {p}ready ? tb_{p}idx + {cw}'d1"
            f" : tb_{p}idx;",
        ]
        self.drives[f"{p}valid"] = f"tb_{p}on ? 1'b1 : {p}valid"
        self.drives[f"{p}payload"] = (
            f"tb_{p}on ? tb_{p}data[tb_{p}idx * {slot} +: {w}] : {p}payload"
        )

    def sequence(self, s: Sequence) -> None:
        p, cw = s.prefix, s.depth.bit_length()
        widths = [self.width(f"{p}{f}") for f in s.fields]
        cmd = sum(widths)
        slot = slot_bits(cmd)
        self.lines.append(f"  // sequence {p}: command k of tb_{p}cmd = {{{', '.join(s.fields)}}}")
        self.signal("reg", f"tb_{p}cmd", s.depth * slot, " = 0")
        self.controls(p, cw)
        self.lines.append(f"  wire {_vec(cmd)}tb_{p}c = tb_{p}cmd[tb_{p}idx * {slot} +: {cmd}];")
        top = cmd
        for field, width in zip(s.fields, widths, strict=True):
            bits = f"[{top - 1}:{top - width}]" if width > 1 else f"[{top - 1}]"
            self.drives[f"{p}{field}"] = f"tb_{p}on ? tb_{p}c{bits} : {p}{field}"
            top -= width
        step = f"    tb_{p}idx <= !tb_{p}go ? {cw}'d0 : tb_{p}on ? tb_{p}idx + {cw}'d1 : tb_{p}idx;"
        if s.capture is None:
            self.lines += [
                f"  assign tb_{p}done = tb_{p}go && tb_{p}idx == tb_{p}count;",
                "  always @(posedge clk)",
                step,
            ]
            return
        if s.latency < 1:
            raise ValueError(f"capture latency must be >= 1, not {s.latency}")
        r, n = self.width(f"{p}{s.capture}"), s.latency
        rslot = slot_bits(r)
        self.lines.append(f"  // {p}{s.capture} of command k, {n} cycles after it, in slot k")
        self.signal("reg", f"tb_{p}captured", s.depth * rslot, " = 0")
        self.lines += [
            f"  reg {_vec(n)}tb_{p}pipe = 0;  // commands in flight, oldest at the top",
            f"  reg [{n * cw - 1}:0] tb_{p}pipe_idx = 0;",
            f"  assign tb_{p}done = tb_{p}go && tb_{p}idx == tb_{p}count && tb_{p}pipe == 0;",
            "  always @(posedge clk) begin",
            step,
            f"    tb_{p}pipe <= {{tb_{p}pipe[{n - 2}:0], tb_{p}on}};"
            if n > 1
            else f"    tb_{p}pipe <= tb_{p}on;",
            f"    tb_{p}pipe_idx <= {{tb_{p}pipe_idx[{(n - 1) * cw - 1}:0], tb_{p}idx}};"
            if n > 1
            else f"    tb_{p}pipe_idx <= tb_{p}idx;",
            f"    if (tb_{p}pipe[{n - 1}])",
            f"      tb_{p}captured[tb_{p}pipe_idx[{n * cw - 1}:{(n - 1) * cw}] * {rslot} +: {r}]"
            f" <= {p}{s.capture};",
            "  end",
        ]

    def uart(self, u: Uart) -> None:
        """The transmitter (Python's ring to the DUT's ``rx``) and the receiver (the DUT's
        ``tx`` into a ring), both counting ``divisor`` cycles per bit."""
        for name in (u.rx, u.tx):
            if self.width(name) != 1:
                raise ValueError(f"UART line {name} must be 1 bit wide")
        if u.divisor < 4:
            raise ValueError(f"a UART player needs at least 4 cycles per bit, not {u.divisor}")
        if u.depth < 2 or u.depth & (u.depth - 1):
            raise ValueError(f"a UART ring holds a power of two bytes, not {u.depth}")
        d, k = u.divisor, u.depth.bit_length() - 1
        r, t = f"tb_{u.rx}", f"tb_{u.tx}"
        cb = max(d.bit_length(), 2)
        self.lines.append(f"  // UART transmitter onto {u.rx}: ring {r}data, 8N1, {d} cycles a bit")
        self.signal("reg", f"{r}data", 8 * u.depth, " = 0")
        self.signal("reg", f"{r}wr", 32, " = 0")
        self.signal("reg", f"{r}rd", 32, " = 0")
        self.lines += [
            f"  reg {r}line = 1'b1;",
            f"  reg [8:0] {r}shift = 0;  // data bits, then the stop bit",
            f"  reg [3:0] {r}bits = 0;  // bits still to send after the current one",
            f"  reg [{cb - 1}:0] {r}wait = 0;  // cycles left of the current bit",
            f"  wire {r}on = {r}wait != 0 || {r}bits != 0 || {r}rd != {r}wr;",
            "  always @(posedge clk)",
            f"    if ({r}wait != 0)",
            f"      {r}wait <= {r}wait - {cb}'d1;",
            f"    else if ({r}bits != 0) begin",
            f"      {r}line <= {r}shift[0];",
            f"      {r}shift <= {{1'b0, {r}shift[8:1]}};",
            f"      {r}bits <= {r}bits - 4'd1;",
            f"      {r}wait <= {cb}'d{d - 1};",
            f"    end else if ({r}rd != {r}wr) begin",
            f"      {r}line <= 1'b0;",
            f"      {r}shift <= {{1'b1, {r}data[{r}rd[{k - 1}:0] * 8 +: 8]}};",
            f"      {r}bits <= 4'd9;",
            f"      {r}wait <= {cb}'d{d - 1};",
            f"      {r}rd <= {r}rd + 32'd1;",
            "    end else",
            f"      {r}line <= 1'b1;",
        ]
        self.drives[u.rx] = f"{r}on ? {r}line : {u.rx}"
        self.lines.append(f"  // UART receiver on {u.tx}: bytes into the ring {t}data")
        self.signal("reg", f"{t}data", 8 * u.depth, " = 0")
        self.signal("reg", f"{t}count", 32, " = 0")
        self.signal("reg", f"{t}errors", 32, " = 0")
        self.lines += [
            f"  reg {t}busy = 0;",
            f"  reg [7:0] {t}shift = 0;",
            f"  reg [3:0] {t}bit = 0;  // 0: start bit, 1-8: data, 9: stop bit",
            f"  reg [{cb - 1}:0] {t}wait = 0;",
            "  always @(posedge clk)",
            f"    if (!{t}busy) begin",
            f"      if (!{u.tx}) begin  // a start bit began a cycle ago: sample its middle",
            f"        {t}busy <= 1'b1;",
            f"        {t}bit <= 4'd0;",
            f"        {t}wait <= {cb}'d{d // 2 - 1};",
            "      end",
            f"    end else if ({t}wait != 0)",
            f"      {t}wait <= {t}wait - {cb}'d1;",
            "    else begin",
            f"      {t}wait <= {cb}'d{d - 1};",
            f"      {t}bit <= {t}bit + 4'd1;",
            f"      if ({t}bit == 4'd0) begin",
            f"        if ({u.tx}) {t}busy <= 1'b0;  // a glitch, no start bit",
            f"      end else if ({t}bit != 4'd9)",
            f"        {t}shift <= {{{u.tx}, {t}shift[7:1]}};",
            "      else begin",
            f"        {t}busy <= 1'b0;",
            f"        if ({u.tx}) begin",
            f"          {t}data[{t}count[{k - 1}:0] * 8 +: 8] <= {t}shift;",
            f"          {t}count <= {t}count + 32'd1;",
            "        end else",
            f"          {t}errors <= {t}errors + 32'd1;",
            "      end",
            "    end",
        ]


@dataclass(frozen=True)
class Harness:
    """The harness of one DUT: module name, Verilog, and the signals Python accesses
    (which a Verilator build must make public)."""

    module: str
    verilog: str
    public: tuple[str, ...]


def harness(
    verilog: str,
    top: str,
    players: Seq[Stream | Sequence | Uart] = (),
    clock_inside: bool = True,
) -> Harness:
    """The harness module around ``top`` with ``players`` (the DUT's Verilog is not changed).

    The clock ``clk`` (period :data:`CLOCK_NS`) is made inside the harness: under
    Verilator a clock that cocotb drives costs a VPI callback and an evaluation of
    the input logic per edge, a third of a simulated cycle of the accelerator.
    ``clock_inside=False`` makes ``clk`` an input for cocotb to drive instead: under
    Verilator, code woken by a rising edge of a clock made inside reads the design's
    registers as they are *after* that edge (Icarus: before), which a bus model that
    samples its handshakes at the edge (cocotbext-axi) cannot work with.
    """
    dut_ports = ports(verilog, top)
    if "clk" not in {p.name for p in dut_ports}:
        raise ValueError(f"module {top} has no clk port")
    m = _Module({port.name: port for port in dut_ports})
    if clock_inside:
        m.lines.append(f"  always #{CLOCK_NS / 2:g} clk = ~clk;")
    for player in players:
        if isinstance(player, Stream):
            m.stream(player)
        elif isinstance(player, Uart):
            m.uart(player)
        else:
            m.sequence(player)
    wires = [
        f"  wire {_vec(m.width(name))}tb_dut_{name} = {expr};" for name, expr in m.drives.items()
    ]
    conns = ",\n".join(
        f"    .{port.name}({'tb_dut_' if port.name in m.drives else ''}{port.name})"
        for port in dut_ports
    )
    outer = [p for p in dut_ports if p.name != "clk" or not clock_inside]
    name = harness_name(top)
    text = "\n".join(
        [
            f"// Test harness around {top}, generated by sim.harness for the cocotb benches;",
            "// not part of the design.",
            "`timescale 1ns/1ps",
            f"module {name}({', '.join(p.name for p in outer)});",
            *(f"  {port.direction} {_vec(port.width)}{port.name};" for port in outer),
            *(["  reg clk = 0;"] if clock_inside else []),
            *m.lines,
            *wires,
            f"  {top} dut (",
            conns,
            "  );",
            "endmodule",
            "",
        ]
    )
    inputs = ("clk",) if clock_inside else ()
    return Harness(name, text, (*inputs, *(p.name for p in outer), *m.signals))


def block_players(block: str, cfg: Config, layer: int = 0) -> list[Stream | Sequence | Uart]:
    """The players of ``block``'s harness (none: the bench drives the block itself).

    The accelerator: its pixel stream (a sample's pixels and the label) and its bus
    (weight loads, pipelined read-back); a neuron core: its event stream (one step's
    events) and its weight port; the encoder: its pixel port; the host link: its serial
    lines (:data:`rtl.verilog.HOST_LINK_DIVISOR` cycles per bit). The desire and update
    units are driven every cycle on a schedule, which a player would not shorten.
    """
    memory_port = ("we", "word", "lane", "data")
    if block == "accelerator":
        return [
            Stream("pixels__", cfg.network.layers[0] + 1),
            Sequence("bus__", ("we", "addr", "wdata"), SEQUENCE_DEPTH, "rdata", READ_LATENCY),
        ]
    if block == "neuron_core":
        return [
            Stream("events__", cfg.network.layers[layer]),
            Sequence("w_", memory_port, SEQUENCE_DEPTH),
        ]
    if block == "encoder":
        return [Sequence("pix_", memory_port, SEQUENCE_DEPTH)]
    if block == "host_link":
        return [Uart("rx", "tx", HOST_LINK_DIVISOR, UART_DEPTH)]
    return []
