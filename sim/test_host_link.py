"""cocotb bench that puts :class:`rtl.host_link.HostLink` on a pseudo-terminal: the
simulation transport of ``python -m desire.host --sim verilator``.

Run by sim.runner as the block ``host_link`` (the link's Verilog as the top
``desire_host_link``, UART included, at :data:`rtl.verilog.HOST_LINK_DIVISOR` cycles per
bit; the config as JSON in ``DESIRE_CONFIG``), usually from :mod:`sim.host_link_server`,
which desire.host starts as a child process. The bench opens a pseudo-terminal
(``os.openpty``), writes its path into the file ``pty`` of the folder
``DESIRE_HOST_SIM_DIR`` (atomically: the host waits for it), and then lets the
simulation run freely while it bridges the two: every :data:`POLL_CYCLES` cycles it
moves what the host wrote into the harness's UART transmitter (sim.harness.Uart) and
what the harness's receiver decoded from ``tx`` to the host. pyserial opens the path as
it opens a USB serial port, so the host's code is the code a board user runs.

Why a harness player rather than cocotbext-uart: a Python wake-up per bit costs more
than simulating the bit (4 cycles), and the link would run at the speed of Python; the
harness's player sends and decodes every bit in the simulator, and Python wakes only
every :data:`POLL_CYCLES` cycles. While the link is quiet (nothing on either line for a
whole poll, the accelerator idle) the bench waits on the pseudo-terminal instead of
simulating idle cycles, so an idle host does not cost a core.

It stops when the file ``stop`` appears in the folder (the host is done), when the
process ``DESIRE_HOST_PID`` is gone (a host that died), or on the fault
``DESIRE_HOST_SIM_FAULT`` (tests: ``disconnect:N`` closes the pseudo-terminal after N
bytes from the host, as a board unplugged; ``hang:N`` stops answering after N bytes, as
a board that hangs). At the end it writes ``stats.json`` (cycles simulated, seconds, of
them waiting on a quiet line, cycles per second of simulating, bytes each way) into the
folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import time
import tty
from pathlib import Path

import cocotb
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, Timer

from sim.harness import CLOCK_NS

#: Environment variable: the folder the bench and the host share (``pty``, ``stop``,
#: ``stats.json``).
ENV_DIR = "DESIRE_HOST_SIM_DIR"
#: Environment variable: the host's process id; the bench stops when it is gone.
ENV_HOST_PID = "DESIRE_HOST_PID"
#: Environment variable: a fault to simulate (``disconnect:N`` or ``hang:N``), for tests.
ENV_FAULT = "DESIRE_HOST_SIM_FAULT"
#: Cycles simulated between two polls of the pseudo-terminal: about 6 bytes' time at 4
#: cycles per bit, well inside the harness's 256-byte receive ring. A poll (a few VPI
#: reads) costs little next to the cycles it lets run (Verilator on 20-12-6: 370k cycles
#: per second polling every 250 cycles, 380k every 1000), and a short interval keeps
#: the round trip of each command short.
POLL_CYCLES = 250
#: Seconds the bench waits on a quiet pseudo-terminal before it simulates the next poll.
IDLE_WAIT_S = 0.005
#: Seconds between checks of the ``stop`` file and of the host's process.
CHECK_S = 0.25


class _Bridge:
    """The pseudo-terminal and the harness's UART rings."""

    def __init__(self, dut: HierarchyObject, folder: Path) -> None:
        self.dut, self.folder = dut, folder
        self.depth = len(dut.tb_rxdata) // 8
        self.ring = bytearray(self.depth)  # mirror of tb_rxdata (Python is its only writer)
        self.wr = 0  # bytes given to the transmitter
        self.seen = 0  # bytes taken from the receiver's ring
        self.pending = b""  # for the host, not yet written to the pseudo-terminal
        self.from_host = self.to_host = 0
        self.leader, self.follower = os.openpty()
        tty.setraw(self.follower)  # bytes as they are: no echo, no line editing
        os.set_blocking(self.leader, False)
        path = os.ttyname(self.follower)
        tmp = folder / "pty.tmp"
        tmp.write_text(path)
        tmp.replace(folder / "pty")  # the host polls for the file: it appears whole

    def close(self) -> None:
        for fd in (self.leader, self.follower):
            with contextlib.suppress(OSError):
                os.close(fd)

    def to_dut(self, limit: int | None = None) -> int:
        """What the host wrote, as far as the transmitter's ring has room; bytes moved."""
        free = self.depth - (self.wr - int(self.dut.tb_rxrd.value))
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return 0
        try:
            data = os.read(self.leader, free)
        except OSError as exc:  # EAGAIN: nothing; EIO: no one has the port open
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                return 0
            raise
        for k, byte in enumerate(data):
            self.ring[(self.wr + k) % self.depth] = byte
        self.dut.tb_rxdata.value = int.from_bytes(self.ring, "little")
        self.wr += len(data)
        self.dut.tb_rxwr.value = self.wr & 0xFFFF_FFFF
        self.from_host += len(data)
        return len(data)

    def from_dut(self) -> int:
        """What the receiver decoded since the last call, on to the host; bytes moved."""
        count = int(self.dut.tb_txcount.value)
        new = (count - self.seen) & 0xFFFF_FFFF
        if new:
            if new > self.depth:
                raise AssertionError(f"the UART receive ring overflowed ({new} bytes in a poll)")
            ring = int(self.dut.tb_txdata.value).to_bytes(self.depth, "little")
            self.pending += bytes(ring[(self.seen + k) % self.depth] for k in range(new))
            self.seen = count
            self.to_host += new
        if self.pending:
            try:
                written = os.write(self.leader, self.pending)
            except BlockingIOError:
                written = 0
            self.pending = self.pending[written:]
        return new

    def wait_for_host(self, seconds: float) -> None:
        """Block until the host writes something (or ``seconds`` pass)."""
        select.select([self.leader], [], [], seconds)


def _fault() -> tuple[str, int] | None:
    text = os.environ.get(ENV_FAULT, "")
    if not text:
        return None
    kind, _, after = text.partition(":")
    if kind not in ("disconnect", "hang") or not after.isdigit():
        raise ValueError(f"{ENV_FAULT} must be disconnect:N or hang:N, not {text!r}")
    return kind, int(after)


def _host_alive() -> bool:
    pid = int(os.environ.get(ENV_HOST_PID, "0"))
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@cocotb.test()
async def test_serve(dut: HierarchyObject) -> None:
    """Serve the link on a pseudo-terminal until the host says stop (module docstring)."""
    folder = Path(os.environ[ENV_DIR])
    fault = _fault()
    dut.rx.value = 1  # the line idles high between the transmitter's bytes
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    # from here polls land on falling edges (the harness's clock rises at 5, 15, ... ns),
    # so what Python writes there has settled long before the next rising edge
    await Timer(CLOCK_NS // 2, unit="ns")
    bridge = _Bridge(dut, folder)
    cycles, quiet, idle, start = 0, 0, 0.0, time.monotonic()
    next_check = start + CHECK_S
    try:
        while True:
            limit = None if fault is None else fault[1] - bridge.from_host
            moved = bridge.to_dut(limit) if limit is None or limit > 0 else 0
            if fault is not None and bridge.from_host >= fault[1]:
                if fault[0] == "disconnect":
                    break  # the pseudo-terminal closes: the host sees the port vanish
                while not (folder / "stop").exists() and _host_alive():  # hang
                    time.sleep(CHECK_S)
                break
            await Timer(POLL_CYCLES * CLOCK_NS, unit="ns")
            cycles += POLL_CYCLES
            moved += bridge.from_dut()
            sending = int(dut.tb_rxrd.value) != bridge.wr
            quiet = 0 if moved or sending or bridge.pending or int(dut.busy.value) else quiet + 1
            if quiet >= 2:  # a whole poll without a byte: the link waits for the host
                t0 = time.monotonic()
                bridge.wait_for_host(IDLE_WAIT_S)
                idle += time.monotonic() - t0
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_S
                if (folder / "stop").exists() or not _host_alive():
                    break
    finally:
        bridge.close()
        seconds = time.monotonic() - start
        busy = seconds - idle
        stats = {
            "cycles": cycles,
            "seconds": seconds,
            "idle_seconds": idle,  # waiting on a quiet pseudo-terminal, not simulating
            "cycles_per_second": cycles / busy if busy > 0 else 0.0,
            "bytes_from_host": bridge.from_host,
            "bytes_to_host": bridge.to_host,
            "line_errors": int(dut.tb_txerrors.value),
        }
        tmp = folder / "stats.json.tmp"
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
        tmp.replace(folder / "stats.json")
    assert stats["line_errors"] == 0, "the link sent a byte without its stop bit"
