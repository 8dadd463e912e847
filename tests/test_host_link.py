"""rtl.host_link.HostLink in the Amaranth simulator, driven through desire.host's Link and
Board over a simulated UART (bit by bit, clk / 4): every command, the error replies, the
resync, and samples and on-chip training against golden/."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import SimulatorContext

from desire.config import load_config
from desire.host import Board, Link, LinkError, SimTransport
from golden.network import GoldenNet, strict_argmax
from rtl.accelerator import Accelerator
from rtl.host_link import HostLink
from rtl.link_protocol import (
    END,
    ESC,
    Command,
    LinkInfo,
    Reply,
    Unframer,
    frame,
    value_width,
)
from rtl.register_map import Mode

SMALL = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4})


def _net(seed: int = 3) -> GoldenNet:
    """Stronger than Kaiming so that the hidden and output layers spike."""
    net = GoldenNet.init_random(SMALL, seed=seed)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return net


def _images(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 256, (n, 20))
    x[0] = 0  # every class silent: a tie, no class
    return x.astype(np.uint8)


def test_protocol_pieces() -> None:
    """Framing, info and widths in plain Python (what both ends import)."""
    data = bytes([1, END, 2, ESC, END, ESC, 3])
    unframer = Unframer()
    wire = frame(data) + frame(b"") + bytes([END])
    assert END not in wire[:-3]
    assert unframer.feed(wire[:5]) == []
    assert unframer.feed(wire[5:]) == [data]
    assert Unframer().feed(bytes([7, ESC, 9, END])) == [None]  # a bad escape
    info = LinkInfo.for_config(SMALL)
    assert LinkInfo.from_bytes(info.to_bytes()) == info
    assert len(info.to_bytes()) == LinkInfo.SIZE
    assert [value_width(b) for b in (1, 8, 9, 16, 17, 32)] == [1, 1, 2, 2, 3, 4]
    with pytest.raises(ValueError):
        value_width(33)


@pytest.mark.parametrize("lanes", [4, 3])
def test_host_weight_addresses_are_the_accelerators(lanes: int) -> None:
    """desire.host lays the weights out as the accelerator decodes them; lanes = 3 leaves
    holes in the address space, so its window is several runs."""
    cfg = SMALL.replace(hardware={"lanes": lanes})
    dut = Accelerator(cfg)
    board = Board(Link(transport=None), cfg)  # type: ignore[arg-type]
    for l, (n_in, n_out) in enumerate([(20, 12), (12, 6)]):
        addr, index = board.weight_order(l)
        table = dict(zip(index.tolist(), addr.tolist(), strict=True))
        for o in range(n_out):
            for i in range(n_in):
                assert table[o * n_in + i] == dut.weight_address(l, o, i)
        runs = board._runs(addr)
        assert (len(runs) == 1) == (lanes == 4)


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        HostLink(SMALL, clk_hz=1e6, baud=500_000)
    external = SMALL.replace(
        hardware={"weights": "external", "architecture": "shared", "training": False}
    )
    with pytest.raises(ValueError, match="on-chip weights"):
        HostLink(external, clk_hz=1e6, baud=250_000)
    with pytest.raises(TypeError, match="Config"):
        HostLink({}, clk_hz=1e6, baud=250_000)  # type: ignore[arg-type]


def test_verilog() -> None:
    """The link converts to Verilog with the board's ports (what a board top instantiates)."""
    from amaranth.back import verilog

    text = verilog.convert(HostLink(SMALL, clk_hz=12e6, baud=115_200), name="desire_host_link")
    header = next(line for line in text.splitlines() if line.startswith("module desire_host_link("))
    ports = header.split("(")[1].rstrip(");").replace(" ", "").split(",")
    assert sorted(ports) == ["busy", "clk", "error", "result", "rst", "rx", "tx"]


def test_commands_errors_and_resync() -> None:
    """Register and weight writes and reads, runs, every error reply, a protocol error on
    the host side, the resync after a half-sent command, and the error LED."""
    leds: list[tuple[int, int, int]] = []
    tr: SimTransport

    async def watch(ctx: SimulatorContext) -> None:
        link = tr.link
        async for _, _, *values in ctx.tick().sample(link.busy, link.result, link.error):
            if not leds or tuple(values) != leds[-1]:
                leds.append(tuple(values))

    tr = SimTransport(SMALL, benches=[watch])
    link = Link(tr)
    board = Board(link, SMALL)
    regs, acc = board.regs, tr.link.core
    assert board.connect() == LinkInfo.for_config(SMALL)

    link.write(regs.THRESHOLD + 1, 1234)
    assert link.read(regs.THRESHOLD + 1) == 1234
    w1 = _net().weights[1]
    addr, index = board.weight_order(1)
    values = np.zeros(8 * 12, np.int64)
    values[: w1.size] = w1.ravel()
    run = values[index[:10]].tolist()  # the first ten weights of layer 1, END/ESC bytes too
    run[3] = -(2**15) + END  # low byte END, high byte 0x80
    run[4] = ESC
    link.write_run(int(addr[0]), run, 2)
    assert link.read_run(int(addr[0]), 10, 2) == run
    assert link.read_run(int(addr[0]), 0, 2) == []
    o, i = divmod(int(index[3]), 12)
    assert link.read(acc.weight_address(1, o, i)) == (run[3] & 0xFFFF_FFFF)

    # errors are answered, and the link stays in step
    assert link.transact(0x99) == (Reply.UNKNOWN_COMMAND, b"")
    assert link.transact(Command.READ, b"\x00\x00\x00") == (Reply.BAD_LENGTH, b"")
    head = int(addr[0]).to_bytes(4, "little") + (2).to_bytes(2, "little")
    assert link.transact(Command.WRITE_RUN, head + bytes([5]) + bytes(10))[0] == Reply.BAD_ARGUMENT
    assert link.transact(Command.READ_RUN, head + bytes([0]))[0] == Reply.BAD_ARGUMENT
    short = head + bytes([2]) + (77).to_bytes(2, "little")  # one value of two: written, refused
    assert link.transact(Command.WRITE_RUN, short) == (Reply.BAD_LENGTH, b"")
    assert link.read_run(int(addr[0]), 2, 2) == [77, run[1]]
    assert link.transact(Command.SYNC, b"") == (Reply.BAD_LENGTH, b"")

    # half a WRITE, then the resync: it is answered BAD_LENGTH (dropped) and writes nothing
    link.send_raw(bytes([Command.WRITE]) + (regs.THRESHOLD + 1).to_bytes(4, "little") + b"\x05")
    assert link.read(regs.THRESHOLD + 1) == 1234

    # half a WRITE the Link does not know of: the next reply is not its own, a LinkError;
    # the command after it resynchronises first
    tr.write(bytes([Command.WRITE, 0, 0]))
    with pytest.raises(LinkError, match="garbled reply"):
        link.read(regs.THRESHOLD + 1)
    assert link.read(regs.THRESHOLD + 1) == 1234

    # a line that swallows the command (unplugged): a timeout, then the link recovers
    tr.timeout_cycles = 2_000
    write, tr.write = tr.write, lambda data: None
    with pytest.raises(LinkError, match="no answer"):
        link.read(regs.THRESHOLD + 1)
    tr.write = write
    assert link.read(regs.THRESHOLD + 1) == 1234

    errors = [e for _, _, e in leds]
    assert errors[0] == 0 and 1 in errors and errors[-1] == 0  # set by an error, SYNC clears


def test_samples_equal_golden() -> None:
    """Inference samples (the weights given at elaboration) against golden; a sample of the
    wrong length never runs and the next one is not mixed with it."""
    net = _net()
    tr = SimTransport(SMALL, net.weights)
    board = Board(Link(tr), SMALL)
    board.connect()
    images = _images(3, seed=5)
    want = net.infer(images)
    for wrong in (21, 52):  # n_in + 1 in inference; n_in + 32 (no wrap of a counter)
        assert board.link.transact(Command.SAMPLE, bytes(wrong)) == (Reply.BAD_LENGTH, b"")
    got = [board.run(img) for img in images]
    cycles, stalls, events = board.counters()
    assert cycles > 0 and stalls == 0 and events[0] > 0
    assert any(want.sum(axis=1) > 0)
    for k, g in enumerate(got):
        assert g.counts == want[k].tolist(), f"sample {k}"
        pred = int(strict_argmax(want[k]))
        assert (g.cls, g.valid) == ((pred, 1) if pred >= 0 else (tr.link.core.no_class, 0))


def test_training_equals_golden() -> None:
    """On-chip training through the link: results, PRNG states and the trained weights of
    the output layer read back equal golden's ``train_step``."""
    net = _net(seed=4)
    tr = SimTransport(SMALL, [w.copy() for w in net.weights])
    board = Board(Link(tr), SMALL)
    board.connect()
    lr_int = net.c.lr_int(0)
    board.set_mode(Mode.TRAINING, lr_int)
    assert board.link.transact(Command.SAMPLE, bytes(20))[0] == Reply.BAD_LENGTH  # no label
    images, labels = _images(3, seed=6)[1:], [2, 5]
    before = net.weights[1].copy()
    for img, label in zip(images, labels, strict=True):
        got = board.run(img, label)
        assert got.counts == net.train_step(img, label, lr_int).counts[-1].tolist()
    regs = board.regs
    assert board.link.read(regs.DROPOUT_STATE) == net.dropout_rng.state
    assert board.link.read(regs.ROUNDING_STATE) == net.rounding_rng.state
    assert not np.array_equal(before, net.weights[1]), "the test needs the weights to change"
    (w1,) = board.read_weights([1])
    np.testing.assert_array_equal(w1, net.weights[1])
