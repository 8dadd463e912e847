"""NIR interoperability (model/nir_io.py, docs/nir.md): round trips bit for bit, a graph
built the way snnTorch exports one, the mapping of NIR's LIF checked against a float
simulation, one-line refusals, the command line, and an imported network on the RTL."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from desire.config import Config
from desire.datasets import load_dataset
from desire.errors import UserError
from golden import GoldenNet
from golden.export import load_export, write_export
from model.checkpoint import save_checkpoint

nir = pytest.importorskip("nir")

from model.nir_io import DEFAULT_DT, NIRError, export_nir, import_nir, main  # noqa: E402

#: Values away from every default, so that the round trip shows the config comes back whole.
CFG = Config().replace(
    network={
        "layers": (784, 32, 10),
        "tsteps": 12,
        "mempot_thres": 0.75,
        "mempot_decay": 3,
        "dropout": (0.1, 0.3),
        "desire_thres_hidden": 0.07,
        "error_margin": 3,
        "lr": 2e-5,
    },
    formats={"rounding": "nearest", "weight_frac": 11},
    hardware={"lanes": 4},
)
#: 24 fraction bits: golden/ then equals real arithmetic but for near-ties (docs/fixed-point.md).
WIDE = Config().replace(formats={"weight_bits": 32, "weight_frac": 24, "membrane_bits": 44})


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    try:
        return load_dataset("fashion-mnist", "test", limit=20)[0]
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Fashion-MNIST not available: {exc}")


def _random_weights(sizes: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    """float32 weights (as the trainer keeps them) that make a network spike."""
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0, 2.0 / np.sqrt(n_in), (n_out, n_in)) + 0.01).astype(np.float32)
        for n_in, n_out in itertools.pairwise(sizes)
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """A trainer checkpoint of CFG and its float32 weights."""
    weights = _random_weights(CFG.network.layers)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    state = {
        "format": 1,
        "weights": [torch.from_numpy(w) for w in weights],
        "config": CFG.to_dict(),
        "epoch": 0,
    }
    save_checkpoint(path, state)
    return path, weights


def test_checkpoint_round_trip_is_exact(trained, images, tmp_path: Path) -> None:
    path, weights = trained
    cfg, back = import_nir(export_nir(path, tmp_path / "net.nir"))
    assert cfg == CFG
    assert all(b.dtype == np.float64 for b in back)
    assert all(np.array_equal(b, w) for b, w in zip(back, weights, strict=True))
    counts = GoldenNet.from_float(CFG, weights).infer(images)
    assert counts.sum() > len(images)  # the network is not silent
    assert np.array_equal(GoldenNet.from_float(cfg, back).infer(images), counts)


def test_exported_graph_follows_nir(trained, tmp_path: Path) -> None:
    """The file reads with nir's own type checking, as other tools read it; its LIFs
    discretised at dt decay by 1 - 2^-k and pass the input with gain 1."""
    path, _ = trained
    graph = nir.read(export_nir(path, tmp_path / "net.nir"))
    kinds = [type(graph.nodes[a]).__name__ for a, _ in graph.edges] + ["Output"]
    assert kinds == ["Input", "Linear", "LIF", "Linear", "LIF", "Output"]
    assert graph.nodes["linear0"].weight.dtype == np.float32
    k, dt = CFG.network.mempot_decay, DEFAULT_DT
    for name, n in (("lif0", 32), ("lif1", 10)):
        lif = graph.nodes[name]
        assert lif.tau.shape == (n,)
        assert np.all(1 - dt / lif.tau == 1 - 2.0**-k)
        assert np.all(dt * lif.r / lif.tau == 1.0)
        assert np.all(lif.v_threshold == CFG.network.mempot_thres)
        assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    meta = graph.metadata
    assert meta["producer"] == "desire-snn" and int(meta["tsteps"]) == 12
    assert meta["reset"].startswith("subtract")


def test_export_folder_round_trip_is_exact(trained, tmp_path: Path) -> None:
    """Integer export -> NIR -> import -> quantise gives the export's integers back."""
    _, weights = trained
    ints = GoldenNet.from_float(CFG, weights).weights
    folder = write_export(tmp_path / "export", CFG, ints)
    cfg, back = import_nir(export_nir(folder, tmp_path / "net.nir"))
    assert cfg == CFG
    assert all(
        np.array_equal(a, b)
        for a, b in zip(GoldenNet.from_float(cfg, back).weights, ints, strict=True)
    )


def _snntorch_lif(beta: np.ndarray, threshold: np.ndarray) -> nir.LIF:
    """snnTorch's export of ``snn.Leaky``: dt = 1e-4, tau = dt / (1 - beta), r = tau / dt."""
    tau = DEFAULT_DT / (1 - beta)
    return nir.LIF(tau=tau, r=tau / DEFAULT_DT, v_leak=np.zeros_like(beta), v_threshold=threshold)


@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per-neuron"])
def test_snntorch_style_graph(images, tmp_path: Path, per_neuron: bool) -> None:
    """Flatten -> Affine (zero bias) -> Leaky -> ..., float32, read back from a file."""
    w1, w2 = _random_weights((784, 32, 10), seed=1)

    def params(n: int, value: float) -> np.ndarray:
        return np.full(n if per_neuron else (), value, dtype=np.float32)

    nodes = {
        "input": nir.Input(input_type=np.array([784])),
        "0": nir.Flatten(input_type=np.array([784]), start_dim=0, end_dim=-1),
        "1": nir.Affine(weight=w1, bias=np.zeros(32, np.float32)),
        "2": _snntorch_lif(params(32, 0.75), params(32, 1.0)),
        "3": nir.Affine(weight=w2, bias=np.zeros(10, np.float32)),
        "4": _snntorch_lif(params(10, 0.75), params(10, 1.0)),
        "output": nir.Output(output_type=np.array([10])),
    }
    names = list(nodes)
    # scalar parameters fail nir's type inference (shape () against (32,)), which the
    # importer therefore skips, and h5py cannot gzip them
    graph = nir.NIRGraph(nodes, list(itertools.pairwise(names)), type_check=per_neuron)
    nir.write(tmp_path / "snntorch.nir", graph, compression="gzip" if per_neuron else None)
    cfg, weights = import_nir(tmp_path / "snntorch.nir")
    assert cfg.network.layers == (784, 32, 10)
    assert cfg.network.mempot_decay == 2 and cfg.network.tsteps == 20  # default preset
    assert all(np.array_equal(w, v) for w, v in zip(weights, (w1, w2), strict=True))
    counts = GoldenNet.from_float(cfg, weights).infer(images)
    assert counts.sum() > len(images)


def _float_nir_counts(layers, dt: float, images: np.ndarray, tsteps: int) -> np.ndarray:
    """NIR's LIF, forward Euler at ``dt``, in float64, with our reset by subtraction,
    ``>=`` test, one-step layer delay and input encoder (docs/nir.md): written from the
    NIR equations, not from model/ or golden/."""
    x = images.astype(np.float64)
    acc = np.zeros_like(x)
    v = [np.zeros((len(x), w.shape[0])) for w, *_ in layers]
    prev = [np.zeros_like(m) for m in v]
    counts = np.zeros_like(v[-1], dtype=np.int64)
    for _ in range(tsteps):
        acc += x
        s_in = (acc >= 255).astype(np.float64)
        acc -= 255 * s_in
        ins, out = [s_in, *prev[:-1]], []
        for l, (w, tau, r, thr) in enumerate(layers):
            v[l] = v[l] + dt / tau * (-v[l] + r * (ins[l] @ w.T))
            s = (v[l] >= thr).astype(np.float64)
            v[l] -= thr * s
            out.append(s)
        prev = out
        counts += prev[-1].astype(np.int64)
    return counts


def test_gain_and_thresholds_fold_into_weights(images) -> None:
    """Per-neuron thresholds and r != tau / dt: the imported network (24 fraction bits)
    spikes as the NIR graph simulated in float64 does, image for image."""
    rng = np.random.default_rng(2)
    dt, k = 1e-3, 3
    layers = []
    for w in _random_weights((784, 32, 10), seed=2):
        n = w.shape[0]
        tau = np.full(n, dt * 2**k)
        layers.append((w.astype(np.float64), tau, 2.5 * tau / dt, rng.uniform(0.5, 2.0, n)))
    nodes = {"input": nir.Input(input_type=np.array([784]))}
    for l, (w, tau, r, thr) in enumerate(layers):
        nodes[f"fc{l}"] = nir.Linear(weight=w)
        zeros = np.zeros_like(tau)
        nodes[f"lif{l}"] = nir.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=thr, v_reset=zeros)
    nodes["output"] = nir.Output(output_type=np.array([10]))
    names = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)))
    cfg, weights = import_nir(graph, config=WIDE, dt=dt)
    assert cfg.network.mempot_decay == k
    golden = GoldenNet.from_float(cfg, weights).infer(images)
    expected = _float_nir_counts(layers, dt, images, cfg.network.tsteps)
    assert golden.sum() > len(images)
    assert np.array_equal(golden, expected)


# ------------------------------------------------------------------------------ refusals


def _lif(n: int, beta: float = 0.75, **values: float) -> nir.LIF:
    tau = DEFAULT_DT / (1 - beta)
    p = {"tau": tau, "r": tau / DEFAULT_DT, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0}
    return nir.LIF(**{key: np.full(n, value) for key, value in (p | values).items()})


def _graph(*body: nir.NIRNode, extra: dict | None = None, edges: list | None = None):
    """Input -> body... -> Output, plus ``extra`` nodes and ``edges``; nir's type check
    off, as a file is read."""
    first = getattr(body[0], "weight", np.zeros((1, 784)))
    nodes = {"input": nir.Input(input_type=np.array([first.shape[1]]))}
    nodes |= {f"n{i}": node for i, node in enumerate(body)}
    nodes["output"] = nir.Output(output_type=np.array([1]))
    names = list(nodes)
    chain = list(itertools.pairwise(names))
    return nir.NIRGraph(nodes=nodes | (extra or {}), edges=chain + (edges or []), type_check=False)


W1, W2 = _random_weights((784, 32, 10), seed=3)
LIN1, LIN2 = nir.Linear(weight=W1), nir.Linear(weight=W2)
CONV = nir.Conv2d(
    input_shape=(28, 28),
    weight=np.zeros((4, 1, 3, 3)),
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    bias=np.zeros(4),
)
CUBA = nir.CubaLIF(
    tau_syn=np.full(32, 2e-4),
    tau_mem=np.full(32, 4e-4),
    r=np.full(32, 4.0),
    v_leak=np.zeros(32),
    v_threshold=np.ones(32),
)
SUB = nir.NIRGraph(
    nodes={"input": nir.Input(input_type=np.array([32])), "output": nir.Output(np.array([32]))},
    edges=[("input", "output")],
)
REFUSED = {
    "bias": (
        _graph(nir.Affine(weight=W1, bias=np.full(32, 0.1)), _lif(32), LIN2, _lif(10)),
        "non-zero bias",
    ),
    "cubalif": (_graph(LIN1, CUBA, LIN2, _lif(10)), "synaptic current"),
    "conv": (_graph(CONV, _lif(4)), "convolution"),
    "if": (
        _graph(LIN1, nir.IF(r=np.ones(32), v_threshold=np.ones(32)), LIN2, _lif(10)),
        "nearest is k = 16",
    ),
    "decay": (_graph(LIN1, _lif(32, beta=0.9), LIN2, _lif(10)), "the nearest is k = 3"),
    "mixed-decay": (_graph(LIN1, _lif(32), LIN2, _lif(10, beta=0.5)), "one decay"),
    "v_leak": (_graph(LIN1, _lif(32, v_leak=0.1), LIN2, _lif(10)), "v_leak = 0.1"),
    "v_reset": (_graph(LIN1, _lif(32, v_reset=0.5), LIN2, _lif(10)), "v_reset = 0.5"),
    "input": (_graph(nir.Linear(weight=W1[:, :100]), _lif(32)), "784 pixels"),
    "classes": (_graph(LIN1, _lif(32), nir.Linear(weight=W2[:1]), _lif(1)), "2 classes"),
    "no-lif": (_graph(LIN1), "not followed by a LIF"),
    "subgraph": (_graph(LIN1, _lif(32), SUB), "subgraph"),
    "recurrent": (
        _graph(
            LIN1,
            _lif(32),
            extra={"rec": nir.Linear(weight=np.eye(32))},
            edges=[("n1", "rec"), ("rec", "n1")],
        ),
        "recurrent connection through 'n1', 'rec'",
    ),
    "branch": (
        _graph(LIN1, _lif(32), extra={"out2": nir.Output(np.array([32]))}, edges=[("n1", "out2")]),
        "no branches",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_are_one_line(case: str) -> None:
    graph, text = REFUSED[case]
    with pytest.raises(NIRError) as info:
        import_nir(graph)
    assert isinstance(info.value, UserError)
    assert text in str(info.value) and "\n" not in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(NIRError, match="is not a readable NIR file"):
        import_nir(bad)
    with pytest.raises(NIRError, match="not found"):
        import_nir(tmp_path / "missing.nir")


# ------------------------------------------------------------------- command line, RTL


def _refused(argv: list[str], text: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and text in err, err


def test_command_line(trained, tmp_path: Path, capsys) -> None:
    path, weights = trained
    net, exp = tmp_path / "net.nir", tmp_path / "export"
    assert main(["export", "--model-path", str(path), "--out", str(net)]) == 0
    assert main(["import", "--model-path", str(net), "--out", str(exp)]) == 0
    assert "golden eval" in capsys.readouterr().out
    cfg, ints, manifest = load_export(exp)
    assert cfg == CFG and manifest["clipped_weights"] == 0
    assert all(
        np.array_equal(a, b)
        for a, b in zip(ints, GoldenNet.from_float(CFG, weights).weights, strict=True)
    )
    _refused(["export", "--model-path", str(path), "--out", str(net)], "--force replaces", capsys)
    foreign = tmp_path / "notes.nir"
    foreign.write_text("mine")
    argv = ["export", "--model-path", str(path), "--out", str(foreign), "--force"]
    _refused(argv, "not a NIR file written by desire-snn", capsys)
    assert foreign.read_text() == "mine"
    argv = ["import", "--model-path", str(net), "--out", str(tmp_path / "e2"), "--layers", "784"]
    _refused(argv, "come from the NIR graph", capsys)
    _refused(["import", "--model-path", str(net), "--out", str(exp)], "--force", capsys)


def test_imported_network_builds_on_the_rtl() -> None:
    """A tiny imported network (inference-only accelerator) elaborates to Verilog."""
    from rtl.accelerator import Accelerator
    from rtl.verilog import generate

    w1, w2 = _random_weights((784, 4, 2), seed=4)
    graph = _graph(nir.Linear(weight=w1), _lif(4), nir.Linear(weight=w2), _lif(2))
    base = Config().replace(hardware={"lanes": 2, "training": False})
    cfg, weights = import_nir(graph, config=base)
    ints = GoldenNet.from_float(cfg, weights).weights
    assert Accelerator(cfg, ints).config == cfg
    assert "module desire_accelerator" in generate(cfg, weights=ints)
