"""``python -m desire.host``: drive the accelerator over its serial link and check it
against golden/.

    python -m desire.host --port /dev/ttyUSB0 --baud 115200 --export runs/x/export --images 100
    python -m desire.host --sim --export runs/small/export --images 10 --train 5
    python -m desire.host --sim verilator --export runs/small/export --images 200 --train 50

Loads an export (checked against its manifest), writes its weights (runs of
``WRITE_RUN``) and thresholds, optionally trains on-chip on ``--train N`` labelled
samples and reads the weights back, then streams ``--images N`` test images and
prints the accuracy, samples/s and the ``CYCLES`` / ``STALLS`` / ``EVENTS`` counters.
Every result (and the trained weights) is compared with golden/ on the same weights;
the first difference is reported (sample, field, both values) with exit status 1.

Transports: ``--port DEV`` (a board running :class:`rtl.host_link.HostLink`; needs
pyserial, the ``host`` extra); ``--sim``: the same HostLink in the Amaranth simulator,
its serial lines driven bit by bit (exact and slow: 40 cycles per byte, about 2,000
simulated cycles per second for 20-12-6; use a small config); ``--sim verilator`` (or
``icarus``): the HostLink's Verilog (UART included: the top a board top wraps) in that
simulator under cocotb, started as a child process (:mod:`sim.host_link_server`) with its
serial lines on a pseudo-terminal, which this process opens with pyserial exactly as
``--port`` opens a board (needs the ``sim`` and ``host`` extras).
A protocol error, a timeout or a disconnect is one line and exit status 2, and
the link stays recoverable: every session, and the next command after a failure,
starts with the resync sequence (:data:`rtl.link_protocol.RESYNC`, then ``SYNC``).
The protocol is :mod:`rtl.link_protocol` (docs/host.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from desire.cli import DEFAULT_DATASET, positive_int, user_errors
from desire.config import PRESETS, Config, load_config
from desire.datafit import check_fits_data
from desire.datasets import DATASETS, load_dataset
from desire.errors import UserError
from golden.export import load_export
from golden.fixed import constants
from golden.network import GoldenNet, strict_argmax
from rtl.link_protocol import (
    MAX_RUN,
    RESYNC,
    Command,
    LinkInfo,
    Reply,
    Unframer,
    frame,
    result_format,
    value_width,
)
from rtl.register_map import AddressMap, Mode, RegisterMap, Status

__all__ = [
    "SIMULATORS",
    "SIM_CLK_HZ",
    "Board",
    "BoardError",
    "Link",
    "LinkError",
    "RtlSimTransport",
    "SerialTransport",
    "SimTransport",
    "main",
]

#: Clock of the simulated board (``--sim``): only the ratio to the baud rate matters.
SIM_CLK_HZ = 1_000_000
#: ``--sim`` choices: the Amaranth simulator in this process (the default of a bare
#: ``--sim``), or the Verilog under cocotb in a child process (:class:`RtlSimTransport`).
SIMULATORS = ("amaranth", "verilator", "icarus")
#: Seconds ``--sim verilator`` / ``icarus`` waits for the simulator to publish its
#: pseudo-terminal: a first build of a config's link takes a minute or more.
SIM_START_TIMEOUT_S = 900.0
#: Errors the board can flag in ``STATUS`` (write 1 to clear).
STATUS_ERRORS = int(Status.ERR_BUSY | Status.ERR_WRITE | Status.ERR_MEMORY | Status.ERR_FRAME)


class LinkError(UserError):
    """The link failed: no answer, a garbled or refused reply, a port that cannot be used."""


class BoardError(Exception):
    """The board answered, but not what golden/ computes (or it refused a write)."""


class Transport(Protocol):
    """Bytes to and from the board."""

    name: str

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """What arrived; empty when nothing did within ``timeout`` (the transport's time)."""
        ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port (pyserial), 8N1 at ``baud``."""

    def __init__(self, port: str, baud: int) -> None:
        self.name = f"--port {port}"
        try:
            import serial
        except ImportError:
            raise LinkError("--port needs pyserial: pip install 'desire-snn[host]'") from None
        # termios.error (not an OSError) is what pyserial's flush and reconfiguration raise
        # on POSIX when the device is gone: a USB bridge unplugged, a pseudo-terminal closed
        errors: tuple[type[BaseException], ...] = (serial.SerialException, OSError)
        try:
            import termios

            errors = (*errors, termios.error)
        except ImportError:  # Windows
            pass
        self._errors = errors
        try:
            self._port = serial.Serial(port, baud, timeout=0.05)
        except (*self._errors, ValueError) as exc:
            raise LinkError(f"cannot open {self.name}: {exc}") from exc

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except self._errors as exc:
            raise LinkError(f"{self.name}: disconnected ({exc})") from exc

    def read(self, timeout: float) -> bytes:
        try:
            if self._port.timeout != timeout:  # setting it reconfigures the port
                self._port.timeout = timeout
            data = self._port.read(1)
            if data and self._port.in_waiting:
                data += self._port.read(self._port.in_waiting)
            return data
        except self._errors as exc:
            raise LinkError(f"{self.name}: disconnected ({exc})") from exc

    def close(self) -> None:
        self._port.close()


class SimTransport:
    """:class:`rtl.host_link.HostLink` in the Amaranth simulator; the test bench drives its
    ``rx`` bit by bit and decodes its ``tx`` as a UART at ``baud`` would (default: the
    fastest the link allows, ``clk_hz / 4``). A read runs the simulation until bytes
    arrive or ``timeout_cycles`` pass without any (the host's timeout in seconds is wall
    time and means nothing here)."""

    def __init__(
        self,
        cfg: Config,
        weights: list[np.ndarray] | None = None,
        *,
        clk_hz: float = SIM_CLK_HZ,
        baud: float | None = None,
        timeout_cycles: int = 100_000,
        benches: Sequence[Callable[..., Awaitable[None]]] = (),
    ) -> None:
        from amaranth.sim import Simulator

        from rtl.host_link import HostLink
        from rtl.uart import MIN_DIVISOR

        baud = clk_hz / MIN_DIVISOR if baud is None else baud
        try:
            self.link = HostLink(cfg, weights, clk_hz=clk_hz, baud=baud)
        except ValueError as exc:
            raise LinkError(f"--sim: {exc}") from exc
        self.name = f"--sim ({clk_hz:g} Hz, {baud:g} baud)"
        self.cycles = 0
        self._divisor = self.link.divisor
        self._clk_hz = clk_hz
        self.timeout_cycles = timeout_cycles
        self._out: deque[int] = deque()
        self._in = bytearray()
        self._sim = Simulator(self.link)
        self._sim.add_clock(1 / clk_hz)
        self._sim.add_testbench(self._drive, background=True)
        self._sim.add_testbench(self._decode, background=True)
        for bench in benches:  # e.g. a test watching the LED outputs
            self._sim.add_testbench(bench, background=True)

    @staticmethod
    async def _ticks(ctx: object, n: int) -> None:
        # plain awaits, not ``repeat``: the suspended bench must close quietly at exit
        for _ in range(n):
            await ctx.tick()

    async def _drive(self, ctx: object) -> None:
        rx, d = self.link.rx, self._divisor
        while True:
            if not self._out:
                await self._ticks(ctx, d)
                continue
            byte = self._out.popleft()
            for bit in (0, *((byte >> k) & 1 for k in range(8)), 1):
                ctx.set(rx, bit)
                await self._ticks(ctx, d)

    async def _decode(self, ctx: object) -> None:
        tx, d = self.link.tx, self._divisor
        while True:
            await ctx.negedge(tx)
            await self._ticks(ctx, d // 2)
            bits = []
            for _ in range(9):
                await self._ticks(ctx, d)
                bits.append(ctx.get(tx))
            if not bits[8]:
                raise AssertionError("the link sent a frame without its stop bit")
            self._in.append(sum(b << k for k, b in enumerate(bits[:8])))

    def write(self, data: bytes) -> None:
        self._out.extend(data)

    def read(self, timeout: float) -> bytes:
        step = 40 * self._divisor  # four bytes' time
        waited = 0
        while not self._in and waited < self.timeout_cycles:
            self.cycles += step
            waited += step
            self._sim.run_until(self.cycles / self._clk_hz)
        data = bytes(self._in)
        self._in.clear()
        return data

    def close(self) -> None:
        pass


class RtlSimTransport:
    """:class:`rtl.host_link.HostLink`'s Verilog in Verilator or Icarus, its UART on a
    pseudo-terminal that :class:`SerialTransport` opens: the code path of a board.

    The simulator runs in a child process, ``python -m sim.host_link_server`` (its own
    session, so that it and the simulator under it can be stopped as a group), which
    builds the ``host_link`` block through :func:`sim.runner.run` (once per config; the
    weights go over the link) and runs sim/test_host_link.py. That bench writes the
    pseudo-terminal's path into the shared folder; the simulation runs freely while this
    process talks to it, at :data:`rtl.verilog.HOST_LINK_DIVISOR` cycles per bit.
    :meth:`close` asks the bench to stop (the file ``stop``) and ends the process group if
    it does not within seconds. A simulator that cannot be built or started is a
    :class:`LinkError` naming the log (kept; the folder is removed after a clean run).
    """

    def __init__(self, cfg: Config, simulator: str, *, start_timeout: float | None = None) -> None:
        from rtl.host_link import HostLink
        from rtl.verilog import HOST_LINK_DIVISOR

        self.name = f"--sim {simulator}"
        self.simulator = simulator
        self.stats: dict | None = None
        try:  # what the child would find only after seconds of imports and conversion
            HostLink(cfg, clk_hz=1e6, baud=1e6 / HOST_LINK_DIVISOR)
        except ValueError as exc:
            raise LinkError(f"{self.name}: {exc}") from None
        try:
            from sim.runner import available
        except ImportError as exc:
            raise LinkError(f"{self.name} needs the sim extra ({exc.name} is missing)") from None
        if not available(simulator):
            raise LinkError(f"{self.name}: {simulator} is not installed")
        self.folder = Path(tempfile.mkdtemp(prefix=f"desire-host-{simulator}-"))
        self.log = self.folder / "sim.log"
        (self.folder / "config.json").write_text(cfg.to_json())
        root = Path(__file__).resolve().parent.parent
        env = {  # not pytest's marker: cocotb's runner behaves otherwise under a test
            **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            "DESIRE_HOST_PID": str(os.getpid()),  # sim.test_host_link.ENV_HOST_PID
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        command = [sys.executable, "-m", "sim.host_link_server", "--simulator", simulator]
        command += ["--config", str(self.folder / "config.json"), "--folder", str(self.folder)]
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._port: SerialTransport | None = None
        try:
            path = self._wait_for_pty(
                SIM_START_TIMEOUT_S if start_timeout is None else start_timeout
            )
            self._port = SerialTransport(path, 115_200)  # a pty ignores the rate
        except LinkError:  # its line names the log: keep the folder
            self.close()
            raise
        except BaseException:  # Ctrl-C while the simulator starts
            self.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self._port.name = f"{self.name} ({path})"
        self.name = self._port.name

    def _wait_for_pty(self, timeout: float) -> str:
        pty = self.folder / "pty"
        deadline = time.monotonic() + timeout
        while not pty.exists():
            if self._proc.poll() is not None:
                raise LinkError(
                    f"{self.name}: the simulator stopped before it was ready (exit status "
                    f"{self._proc.returncode}): {self._last_log_line()}; log: {self.log}"
                )
            if time.monotonic() > deadline:
                raise LinkError(
                    f"{self.name}: the simulator was not ready within {timeout:g} s; log: "
                    f"{self.log}"
                )
            time.sleep(0.05)
        return pty.read_text().strip()

    def _last_log_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "no output"

    def write(self, data: bytes) -> None:
        assert self._port is not None
        self._port.write(data)

    def read(self, timeout: float) -> bytes:
        assert self._port is not None
        return self._port.read(timeout)

    def close(self) -> None:
        """Close the port, let the bench stop (its ``stats.json``), end what remains."""
        if self._port is not None:
            self._port.close()
            self._port = None
        (self.folder / "stop").touch()  # also stops a bench whose parent died
        try:
            if not (self.folder / "pty").exists():  # still building: nothing to wait for
                raise subprocess.TimeoutExpired(self._proc.args, 0)
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._end_group()
        try:
            self.stats = json.loads((self.folder / "stats.json").read_text())
        except (OSError, ValueError):
            self.stats = None
        if self._proc.returncode == 0:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _end_group(self) -> None:
        """SIGTERM, then SIGKILL, to the child's process group (the simulator included),
        each followed by up to 5 s for the group to be gone."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self._proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                self._proc.poll()  # reap the child, or the group never empties
                try:
                    os.killpg(self._proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


class Link:
    """The protocol of :mod:`rtl.link_protocol` over a :class:`Transport`, one command at a
    time. A failed command leaves the link *dirty*: the next one first resynchronises."""

    def __init__(self, transport: Transport, timeout: float = 5.0) -> None:
        self.transport = transport
        self.timeout = timeout
        self._unframer = Unframer()
        self._frames: deque[bytes | None] = deque()
        self._token = int.from_bytes(os.urandom(1), "little")
        self._dirty = True
        self.info: LinkInfo | None = None

    def _next_frame(self) -> bytes | None:
        while not self._frames:
            data = self.transport.read(self.timeout)
            if not data:
                raise LinkError(f"no answer from {self.transport.name} within {self.timeout:g} s")
            self._frames.extend(self._unframer.feed(data))
        return self._frames.popleft()

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (tests: half a command, garbage); the link is then dirty."""
        self._dirty = True
        self.transport.write(data)

    def resync(self, attempts: int = 3) -> LinkInfo:
        """The resync sequence, then ``SYNC`` with a fresh token; every reply frame before
        the one echoing it is dropped. Returns what the board says about itself."""
        for _ in range(attempts):
            self._token = (self._token + 1) & 0xFF
            self.transport.write(RESYNC + frame(bytes([Command.SYNC, self._token])))
            try:
                while True:
                    f = self._next_frame()
                    if f is not None and f[:3] == bytes([Reply.OK, Command.SYNC, self._token]):
                        break
            except LinkError:
                continue
            try:
                self.info = LinkInfo.from_bytes(f[3:])
            except ValueError as exc:
                raise LinkError(f"{self.transport.name}: bad SYNC reply ({exc})") from None
            self._dirty = False
            return self.info
        raise LinkError(f"no answer to SYNC from {self.transport.name} ({attempts} attempts)")

    def transact(self, cmd: int, payload: bytes = b"") -> tuple[Reply, bytes]:
        """Send one command frame, return the reply's status and payload (any status)."""
        if self._dirty:
            self.resync()
        self._dirty = True
        self.transport.write(frame(bytes([cmd]) + payload))
        f = self._next_frame()
        if f is None or len(f) < 2 or f[1] != cmd or f[0] not in set(Reply):
            raise LinkError(f"{self.transport.name}: garbled reply {bytes(f or b'')[:8].hex()}")
        self._dirty = False
        return Reply(f[0]), f[2:]

    def command(self, cmd: Command, payload: bytes = b"", reply_len: int = 0) -> bytes:
        status, data = self.transact(cmd, payload)
        if status != Reply.OK:
            raise LinkError(f"{self.transport.name} answered {status.name} to {cmd.name}")
        if len(data) != reply_len:
            self._dirty = True
            raise LinkError(
                f"{self.transport.name}: {cmd.name} reply of {len(data)} bytes, not {reply_len}"
            )
        return data

    def read(self, addr: int) -> int:
        return int.from_bytes(self.command(Command.READ, addr.to_bytes(4, "little"), 4), "little")

    def write(self, addr: int, value: int) -> None:
        payload = addr.to_bytes(4, "little") + (value & 0xFFFF_FFFF).to_bytes(4, "little")
        self.command(Command.WRITE, payload)

    def write_run(self, addr: int, values: Sequence[int], width: int) -> None:
        """``values`` to ``addr``, ``addr + 1``, ... (``width`` bytes each, sign-extended)."""
        mask = (1 << (8 * width)) - 1
        for at in range(0, len(values), MAX_RUN):
            chunk = values[at : at + MAX_RUN]
            head = (addr + at).to_bytes(4, "little") + len(chunk).to_bytes(2, "little")
            body = b"".join((int(v) & mask).to_bytes(width, "little") for v in chunk)
            self.command(Command.WRITE_RUN, head + bytes([width]) + body)

    def read_run(self, addr: int, count: int, width: int) -> list[int]:
        """``count`` values from ``addr`` on, ``width`` low bytes each, sign-extended."""
        values: list[int] = []
        sign = 1 << (8 * width - 1)
        for at in range(0, count, MAX_RUN):
            n = min(MAX_RUN, count - at)
            head = (addr + at).to_bytes(4, "little") + n.to_bytes(2, "little") + bytes([width])
            data = self.command(Command.READ_RUN, head, n * width)
            for k in range(n):
                v = int.from_bytes(data[k * width : (k + 1) * width], "little")
                values.append(v - 2 * sign if v & sign else v)
        return values

    def sample(self, data: bytes, reply_len: int) -> bytes:
        return self.command(Command.SAMPLE, data, reply_len)


@dataclass
class Result:
    """One sample's result as the board sent it."""

    counts: list[int]
    cls: int
    valid: int


class Board:
    """The accelerator of ``cfg`` behind a :class:`Link`: weights, modes, samples, counters."""

    def __init__(self, link: Link, cfg: Config) -> None:
        self.link, self.cfg = link, cfg
        self.c = c = constants(cfg)
        self.lanes = cfg.hardware.lanes
        self.blocks = [-(-n // self.lanes) for n in c.layers[1:]]
        depths = [n * b for n, b in zip(c.layers, self.blocks, strict=False)]
        self.addresses = AddressMap(depths, self.lanes)
        self.regs = RegisterMap(c.n_linear)
        self.format = result_format(cfg)
        self.width = value_width(c.weight_bits)

    def connect(self) -> LinkInfo:
        """Resync and check that the board's design is for this config."""
        info = self.link.resync()
        want = LinkInfo.for_config(self.cfg)
        if info != want:
            diff = [f for f, _ in LinkInfo.FIELDS if getattr(info, f) != getattr(want, f)]
            shown = ", ".join(f"{f} {getattr(info, f)} (config: {getattr(want, f)})" for f in diff)
            raise LinkError(
                f"{self.link.transport.name} holds a design for another config: {shown}"
            )
        return info

    def weight_order(self, l: int) -> tuple[np.ndarray, np.ndarray]:
        """Bus addresses of layer ``l``'s weight window in address order, and for each the
        flat index into the layer's padded ``(blocks * lanes, n_in)`` array."""
        lanes, blocks, n_in = self.lanes, self.blocks[l], self.c.layers[l]
        words = np.arange(n_in * blocks)
        inp, block = np.divmod(words, blocks)  # word = inp * blocks + block (in-major)
        lane = np.arange(lanes)
        out = (block[:, None] * lanes + lane[None, :]).ravel()
        index = out * n_in + np.repeat(inp, lanes)
        base = self.addresses.weight(l, 0, 0)
        addr = base + ((words[:, None] << self.addresses.lane_bits) + lane[None, :]).ravel()
        return addr, index

    def _runs(self, addr: np.ndarray) -> list[tuple[int, int]]:
        """(start position, length) of the runs of consecutive addresses."""
        cuts = [0, *(np.flatnonzero(np.diff(addr) != 1) + 1).tolist(), len(addr)]
        return list(itertools.pairwise(cuts))

    def write_weights(self, weights: list[np.ndarray]) -> int:
        """Every layer's window, padding lanes 0, in runs; returns the commands sent."""
        commands = 0
        for l, w in enumerate(weights):
            addr, index = self.weight_order(l)
            padded = np.zeros((self.blocks[l] * self.lanes, self.c.layers[l]), dtype=np.int64)
            padded[: w.shape[0]] = w
            values = padded.ravel()[index].tolist()
            for a, b in self._runs(addr):
                self.link.write_run(int(addr[a]), values[a:b], self.width)
                commands += 1
        return commands

    def read_weights(self, layers: Sequence[int] | None = None) -> list[np.ndarray]:
        """The weights of ``layers`` (default: all), one ``(n_out, n_in)`` array each."""
        weights = []
        for l in range(self.c.n_linear) if layers is None else layers:
            addr, index = self.weight_order(l)
            flat = np.zeros((self.blocks[l] * self.lanes) * self.c.layers[l], dtype=np.int64)
            for a, b in self._runs(addr):
                flat[index[a:b]] = self.link.read_run(int(addr[a]), b - a, self.width)
            padded = flat.reshape(self.blocks[l] * self.lanes, self.c.layers[l])
            weights.append(padded[: self.c.layers[l + 1]].astype(np.int32))
        return weights

    def set_mode(self, mode: Mode, lr_int: int = 0) -> None:
        """``MODE`` and the thresholds that go with it (and ``LR_INT`` for training)."""
        c, regs = self.c, self.regs
        for l in range(c.n_linear):
            self.link.write(regs.THRESHOLD + l, c.threshold(l, mode == Mode.TRAINING))
        if mode == Mode.TRAINING:
            self.link.write(regs.LR_INT, lr_int)
        self.link.write(regs.MODE, mode)

    def check_status(self, when: str) -> None:
        """BoardError if ``STATUS`` holds an error bit (they are then cleared)."""
        status = self.link.read(self.regs.STATUS)
        if status & STATUS_ERRORS:
            self.link.write(self.regs.STATUS, STATUS_ERRORS)
            names = ", ".join(s.name for s in Status if s & status & STATUS_ERRORS)
            raise BoardError(f"board: flagged {names} in STATUS {when}")

    def run(self, pixels: np.ndarray, label: int | None = None) -> Result:
        data = bytes(int(p) for p in pixels) + (b"" if label is None else bytes([label]))
        counts, cls, valid = self.format.decode(self.link.sample(data, self.format.n_bytes))
        return Result(counts, cls, valid)

    def counters(self) -> tuple[int, int, list[int]]:
        """``CYCLES``, ``STALLS`` and ``EVENTS[l]`` in one ``READ_RUN``."""
        regs, n = self.regs, self.c.n_linear
        values = self.link.read_run(regs.CYCLES, regs.EVENTS + n - regs.CYCLES, 4)
        values = [v & 0xFFFF_FFFF for v in values]
        at = regs.EVENTS - regs.CYCLES
        return values[0], values[regs.STALLS - regs.CYCLES], values[at : at + n]


def compare(where: str, got: Result, counts: np.ndarray, no_class: int) -> None:
    """BoardError naming the first field where ``got`` differs from golden's ``counts``."""
    for k, (g, w) in enumerate(zip(got.counts, counts.tolist(), strict=True)):
        if g != w:
            raise BoardError(f"mismatch: {where}, counts[{k}]: board {g}, golden {w}")
    pred = int(strict_argmax(counts))
    want_cls, want_valid = (pred, 1) if pred >= 0 else (no_class, 0)
    if got.valid != want_valid:
        raise BoardError(f"mismatch: {where}, valid_class: board {got.valid}, golden {want_valid}")
    if got.cls != want_cls:
        raise BoardError(f"mismatch: {where}, cls: board {got.cls}, golden {want_cls}")


@dataclass
class Stats:
    """Counters over the samples of a run."""

    cycles: list[int] = field(default_factory=list)
    events: list[list[int]] = field(default_factory=list)
    stalls: int = 0

    def add(self, board: Board) -> None:
        cycles, stalls, events = board.counters()
        self.cycles.append(cycles)
        self.events.append(events)
        self.stalls = stalls


def train(board: Board, net: GoldenNet, x: np.ndarray, y: np.ndarray) -> float:
    """On-chip training on (x, y) against ``net.train_step``; returns samples/s."""
    lr_int = net.c.lr_int(0)
    board.set_mode(Mode.TRAINING, lr_int)
    no_class = (1 << board.c.layers[-1].bit_length()) - 1
    t0 = time.perf_counter()
    for k, (img, label) in enumerate(zip(x, y, strict=True)):
        got = board.run(img, int(label))
        want = net.train_step(img, int(label), lr_int).counts[-1]
        compare(f"training sample {k}", got, want, no_class)
    rate = len(y) / (time.perf_counter() - t0)
    board.check_status("after training")
    regs = board.regs
    for name, reg, rng in (
        ("DROPOUT_STATE", regs.DROPOUT_STATE, net.dropout_rng),
        ("ROUNDING_STATE", regs.ROUNDING_STATE, net.rounding_rng),
    ):
        value = board.link.read(reg)
        if value != rng.state:
            raise BoardError(
                f"mismatch: after training, {name}: board {value:#x}, golden {rng.state:#x}"
            )
    for l, (got_w, want_w) in enumerate(zip(board.read_weights(), net.weights, strict=True)):
        diff = np.argwhere(got_w != want_w)
        if diff.size:
            o, i = diff[0]
            raise BoardError(
                f"mismatch: after training, weight w{l}[{o}, {i}]: board {got_w[o, i]}, "
                f"golden {want_w[o, i]}"
            )
    board.set_mode(Mode.INFERENCE)
    return rate


def infer(board: Board, net: GoldenNet, x: np.ndarray) -> tuple[list[Result], float, Stats]:
    """Inference of every image, each checked against golden; returns results, samples/s
    and the counters."""
    want = net.infer(x)
    no_class = (1 << board.c.layers[-1].bit_length()) - 1
    board.link.write(board.regs.STALLS, 0)
    results, stats = [], Stats()
    t0 = time.perf_counter()
    for k, img in enumerate(x):
        got = board.run(img)
        compare(f"inference sample {k}", got, want[k], no_class)
        stats.add(board)
        results.append(got)
    return results, len(x) / (time.perf_counter() - t0), stats


def _open(args: argparse.Namespace, cfg: Config) -> Transport:
    if args.sim == "amaranth":
        return SimTransport(cfg, baud=args.baud)
    if args.sim:
        from rtl.verilog import HOST_LINK_DIVISOR

        if args.baud is not None:
            raise UserError(
                f"--baud: the --sim {args.sim} link runs at a fixed {HOST_LINK_DIVISOR} cycles "
                "per bit; leave --baud out"
            )
        return RtlSimTransport(cfg, args.sim)
    return SerialTransport(args.port, args.baud or 115_200)


def _board_config(args: argparse.Namespace, exported: Config) -> Config:
    """The board's config: ``--config`` / ``--preset`` or the export's; its network and
    number formats must be the export's (otherwise golden/ computes something else)."""
    if args.config is None and args.preset is None:
        return exported
    cfg = load_config(args.config, args.preset)
    for section in ("network", "formats"):
        if getattr(cfg, section) != getattr(exported, section):
            raise UserError(
                f"the [{section}] of {args.config or args.preset} differs from the export's "
                f"(the board must run the exported network)"
            )
    return cfg


def _data(args: argparse.Namespace, split: str, n: int, cfg: Config):
    x, y = load_dataset(args.dataset, split, args.data_dir, args.download, n)
    check_fits_data(cfg.network.layers, x.shape[1], int(y.max()) + 1, args.dataset)
    return x, y


def run(args: argparse.Namespace) -> int:
    exported, weights, _ = load_export(args.export)
    cfg = _board_config(args, exported)
    if args.train and not cfg.hardware.training:
        raise UserError("--train needs a training build (hardware.training = true)")
    x, y = _data(args, "test", args.images, cfg)
    train_xy = _data(args, "train", args.train, cfg) if args.train else None
    net = GoldenNet(cfg, [w.copy() for w in weights])
    transport = _open(args, cfg)
    try:
        board = Board(Link(transport, args.timeout), cfg)
        info = board.connect()
        print(
            f"board: {transport.name}, protocol v{info.version}, layers "
            f"{'-'.join(map(str, cfg.network.layers))}, T = {info.tsteps}, {info.lanes} lanes"
            f"{', training' if info.training else ''}"
        )
        board.link.write(board.regs.STATUS, STATUS_ERRORS)
        t0 = time.perf_counter()
        commands = board.write_weights(weights)
        board.set_mode(Mode.INFERENCE)
        board.check_status("after loading the weights")
        n_weights = sum(w.size for w in weights)
        print(
            f"weights: {n_weights} in {commands} WRITE_RUN commands, "
            f"{time.perf_counter() - t0:.1f} s"
        )
        if train_xy is not None:
            rate = train(board, net, *train_xy)
            print(
                f"training: {len(train_xy[1])} samples on-chip, {rate:.2f} samples/s; results, "
                "PRNG states and weights read back equal golden"
            )
        results, rate, stats = infer(board, net, x)
        board.check_status("after inference")
    except BoardError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        transport.close()
    correct = sum(r.valid and r.cls == int(t) for r, t in zip(results, y, strict=True))
    print(
        f"accuracy: {correct / len(y):.2%} ({correct} / {len(y)} {args.dataset} test images), "
        f"{rate:.2f} samples/s"
    )
    events = np.mean(stats.events, axis=0)
    print(
        f"counters: CYCLES mean {np.mean(stats.cycles):.0f} (min {min(stats.cycles)}, max "
        f"{max(stats.cycles)}), STALLS {stats.stalls}, EVENTS mean "
        + " ".join(f"{e:.1f}" for e in events)
    )
    print(f"golden: all {len(y)} results equal")
    stats = getattr(transport, "stats", None)
    if stats:  # --sim verilator / icarus: how fast the simulator ran
        print(
            f"simulator: {stats['cycles']:,} cycles in {stats['seconds']:.1f} s "
            f"({stats['idle_seconds']:.1f} s of them waiting for the host), "
            f"{stats['cycles_per_second']:,.0f} cycles/s while simulating"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m desire.host",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--port", help="serial device of the board, e.g. /dev/ttyUSB0")
    link.add_argument(
        "--sim",
        nargs="?",
        const="amaranth",
        choices=SIMULATORS,
        metavar="SIMULATOR",
        help="the link in a simulator: amaranth (a bare --sim; in this process), or its "
        "Verilog in verilator or icarus on a pseudo-terminal",
    )
    p.add_argument("--baud", type=positive_int, help="baud rate (port: 115200; sim: clk / 4)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a reply")
    p.add_argument("--export", required=True, type=Path, help="export folder (weights)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="the board's config (default: the export's)")
    src.add_argument("--preset", choices=sorted(PRESETS), help="the board's config by name")
    p.add_argument("--images", type=positive_int, default=100, help="test images to stream")
    p.add_argument("--train", type=positive_int, help="train on-chip on N samples first")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default=DEFAULT_DATASET)
    data.add_argument("--data-dir", type=Path, help="folder with the IDX files (default: search)")
    data.add_argument("--download", action="store_true", help="download the dataset if not found")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with user_errors(parser):
        return run(args)
    return 2  # (user_errors exits; this is for type checkers)


if __name__ == "__main__":
    sys.exit(main())
