"""Interoperability through NIR, the Neuromorphic Intermediate Representation.

NIR (``pip install -e '.[nir]'``) is the graph format that snnTorch, Norse, Rockpool,
Lava-DL, Sinabs and others read and write. :func:`export_nir` writes a trained network
(trainer checkpoint or integer export folder) as a chain ``Input -> Linear -> LIF -> ...
-> Output``; :func:`import_nir` reads such a chain (ours, or one made by another
framework) back into a :class:`~desire.config.Config` and float weights, which
``GoldenNet.from_float`` quantises for golden/ and the RTL. docs/nir.md gives the mapping
of the discrete-time LIF onto NIR's continuous one, what NIR cannot carry and where it
goes instead (the graph's metadata), and what the importer refuses and why.

Command line::

    python -m model.nir_io export --model-path runs/x/best.pt --out runs/x/net.nir
    python -m model.nir_io import --model-path net.nir --out runs/y/export
"""

from __future__ import annotations

import argparse
import importlib
import io
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from desire.atomic import atomic_write, remove_temps
from desire.cli import add_network_flags, build_config, user_errors
from desire.config import PRESETS, Config, ConfigError
from desire.errors import OutputError, UserError
from desire.outdir import check_writable, create_dir
from golden.export import check_target, load_export, write_export
from golden.fixed import constants, dequantize_weights, quantize_weights
from model.checkpoint import checkpoint_weights, load_checkpoint

if TYPE_CHECKING:
    import nir

__all__ = [
    "DECAY_TOLERANCE",
    "DEFAULT_DT",
    "INPUT_PIXELS",
    "PRODUCER",
    "NIRError",
    "export_nir",
    "import_nir",
    "load_network",
    "main",
    "read_graph",
    "stored_config",
    "to_nir",
]

#: ``metadata["producer"]`` of the graphs this module writes: only such a graph's
#: metadata (config, dt) is trusted on import, and only such a file is replaced by --force.
PRODUCER = "desire-snn"
FORMAT_VERSION = 1
#: Time step the LIF time constants are written for: snnTorch's (its export and import
#: both discretise at 1e-4 s), so that snnTorch reads our decay as beta = 1 - 2^-k.
DEFAULT_DT = 1e-4
#: Largest relative deviation of tau / dt from 2^k accepted as decay 1 - 2^-k: float32
#: storage of tau and dt errs by under 2e-7; over T steps the membrane then differs by
#: about T * 1e-6 of itself, a tenth of a weight LSB (2^-12) near a threshold of 1 at T = 20.
DECAY_TOLERANCE = 1e-6
#: The accelerator's encoder takes 28 x 28 pixel images, flattened row-major.
INPUT_PIXELS = 784

#: What reading a damaged or foreign file raises inside h5py and nir's node constructors.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, AssertionError, AttributeError)


class NIRError(UserError, ValueError):
    """A NIR file cannot be read, or describes a network the accelerator cannot run."""


def _nir() -> ModuleType:
    """The ``nir`` package, imported on first use: it is an optional extra, and the rest
    of model/ must work without it."""
    try:
        return importlib.import_module("nir")
    except ImportError as exc:
        raise NIRError(
            "NIR support needs the nir package: pip install -e '.[nir]' (or make setup)"
        ) from exc


def _why(exc: BaseException, limit: int = 160) -> str:
    """A library's error text as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------ export


def load_network(model_path: str | Path) -> tuple[Config, list[np.ndarray]]:
    """Config and float64 weights of a trainer checkpoint (ours or the reference's) or of
    an integer export folder, whose weights become ``w_int * 2^-weight_frac`` exactly, so
    that importing them again quantises back to the same integers."""
    path = Path(model_path)
    if path.is_dir():
        cfg, ints, _ = load_export(path)
        return cfg, dequantize_weights(ints, constants(cfg))
    state = load_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    return cfg, checkpoint_weights(state, cfg, path)


def _compact(w: np.ndarray) -> np.ndarray:
    """float32 where that holds the values exactly (trainer weights, integers of up to 24
    bits), as other frameworks store theirs; float64 otherwise, so nothing is rounded."""
    w32 = w.astype(np.float32)
    return w32 if np.array_equal(w32, w) else w


def _metadata(cfg: Config, dt: float) -> dict[str, Any]:
    """What NIR's node types cannot express, for our importer (``config``) and for people
    and other tools (the rest, in words); docs/nir.md lists each item."""
    return {
        "producer": PRODUCER,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_json(),
        "dt": dt,
        "tsteps": cfg.network.tsteps,
        "reset": "subtract: v <- v - v_threshold after a spike (not NIR's v <- v_reset)",
        "fire": "v >= v_threshold (NIR: v > v_threshold)",
        "layer_delay": "each Linear after the first sees the previous LIF's spikes of "
        "the step before (none at step 0)",
        "input_encoder": "per pixel x in 0..255: a += x; spike when a >= 255; a -= 255 "
        "(a = 0 at the start of a sample)",
        "classification": "the output neuron with strictly the most spikes over tsteps",
    }


def to_nir(cfg: Config, weights: list[np.ndarray], dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """The network as a NIR chain; its LIFs, forward-Euler discretised at ``dt``, decay by
    ``1 - dt / tau = 1 - 2^-k`` per step and add ``dt * r / tau = 1`` times the input."""
    nir = _nir()
    net = cfg.network
    k = net.mempot_decay
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([net.layers[0]]))}
    chain = ["input"]
    for l, w in enumerate(weights):
        n = w.shape[0]
        nodes[f"linear{l}"] = nir.Linear(weight=_compact(np.asarray(w, dtype=np.float64)))
        nodes[f"lif{l}"] = nir.LIF(
            tau=np.full(n, dt * 2.0**k),
            r=np.full(n, 2.0**k),
            v_leak=np.zeros(n),
            v_threshold=np.full(n, net.mempot_thres),
            v_reset=np.zeros(n),
        )
        chain += [f"linear{l}", f"lif{l}"]
    nodes["output"] = nir.Output(output_type=np.array([net.layers[-1]]))
    chain.append("output")
    return nir.NIRGraph(
        nodes=nodes, edges=list(itertools.pairwise(chain)), metadata=_metadata(cfg, dt)
    )


def _own_metadata(graph: nir.NIRGraph) -> dict[str, Any]:
    """The graph's metadata if this module wrote it, else nothing: another producer's
    ``dt`` or ``config`` may mean something else."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    return meta if meta.get("producer") == PRODUCER else {}


def _check_nir_target(out: Path, force: bool) -> None:
    """Refuse, before anything is written, an ``--out`` that is a folder, or a file that
    exists without ``force`` or that this module did not write (docs/outputs.md)."""
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give a file name, e.g. {out / 'net.nir'}")
    check_writable(out.parent)
    if not out.exists():
        return
    if not force:
        raise OutputError(f"--out {out} already exists; --force replaces it")
    try:
        own = bool(_own_metadata(_nir().read(out, type_check=False)))
    except _READ_ERRORS:
        own = False
    if not own:
        raise OutputError(
            f"--out {out} is not a NIR file written by {PRODUCER}; refusing to replace it"
        )


def export_nir(
    model_path: str | Path, out: str | Path, dt: float = DEFAULT_DT, force: bool = False
) -> Path:
    """Write ``model_path``'s network as a NIR file, atomically (docs/outputs.md)."""
    nir = _nir()
    out = Path(out)
    _check_nir_target(out, force)
    if not (math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt}")
    cfg, weights = load_network(model_path)
    buffer = io.BytesIO()
    nir.write(buffer, to_nir(cfg, weights, dt))
    create_dir(out.parent)
    remove_temps(out.parent, (out.name,))
    atomic_write(out, lambda f: f.write(buffer.getbuffer()))
    return out


# ------------------------------------------------------------------------------ import


def read_graph(source: str | Path | nir.NIRGraph) -> nir.NIRGraph:
    """A NIR graph from a file (read without nir's type inference, which would add nodes
    and refuse graphs whose neuron parameters are scalars, as snnTorch writes them)."""
    nir = _nir()
    if isinstance(source, nir.NIRGraph):
        return source
    path = Path(source)
    if not path.is_file():
        raise NIRError(f"NIR file not found: {path}")
    try:
        return nir.read(path, type_check=False)
    except _READ_ERRORS as exc:
        raise NIRError(f"{path} is not a readable NIR file ({_why(exc)})") from exc


def stored_config(graph: nir.NIRGraph) -> Config | None:
    """The config :func:`export_nir` stored in the graph's metadata; None for a graph of
    another producer."""
    text = _own_metadata(graph).get("config")
    if text is None:
        return None
    try:
        return Config.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:  # ConfigError and JSON errors are ValueErrors
        raise NIRError(f"the graph's stored {PRODUCER} config is invalid: {_why(exc)}") from exc


def _chain(graph: nir.NIRGraph) -> list[tuple[str, Any]]:
    """The nodes in order, if the edges form one simple path through all of them."""
    nir = _nir()
    nodes, edges = graph.nodes, [(str(a), str(b)) for a, b in graph.edges]
    if not nodes:
        raise NIRError("the graph has no nodes")
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NIRError(
                f"node {name!r} is a subgraph (how recurrent layers are exported): "
                "the accelerator runs feed-forward chains only"
            )
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRError(f"edge ({a!r}, {b!r}) names no node {end!r}")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    _refuse_cycles(succ, pred)
    for name in nodes:
        if len(pred[name]) > 1 or len(succ[name]) > 1:
            raise NIRError(
                f"node {name!r} has {len(pred[name])} inputs and {len(succ[name])} outputs: "
                "the accelerator runs a single chain of layers (no branches or merges)"
            )
    roots = [n for n in nodes if not pred[n]]
    if len(roots) != 1:
        raise NIRError(
            f"the graph falls into {len(roots)} separate chains (starting at "
            f"{', '.join(map(repr, roots[:3]))}): the accelerator runs a single chain"
        )
    order = [roots[0]]
    while succ[order[-1]]:
        order.append(succ[order[-1]][0])
    return [(n, nodes[n]) for n in order]


def _refuse_cycles(succ: dict[str, list[str]], pred: dict[str, list[str]]) -> None:
    """Refuse a cycle, naming its nodes: peel off nodes without inputs, then nodes without
    outputs (Kahn's algorithm both ways); what is left lies on a cycle."""
    left = set(succ)
    for links in (pred, succ):
        peel = True
        while peel:
            peel = {n for n in left if not any(m in left for m in links[n])}
            left -= peel
    cyclic = sorted(left)
    if cyclic:
        raise NIRError(
            f"recurrent connection through {', '.join(map(repr, cyclic[:4]))}: "
            "the accelerator runs feed-forward chains only"
        )


def _refusal(name: str, node: Any, expected: str) -> NIRError:
    """Why ``node`` cannot stand where the chain needs ``expected``, in one line."""
    nir = _nir()
    kind = type(node).__name__
    if isinstance(node, nir.Conv1d | nir.Conv2d | nir.SumPool2d | nir.AvgPool2d):
        why = "convolution and pooling: the accelerator has fully connected layers only"
    elif isinstance(node, nir.CubaLIF | nir.CubaLI):
        why = "a synaptic current (tau_syn): the accelerator's neurons have a membrane only"
    elif isinstance(node, nir.IF):
        why = (
            "an IF neuron never leaks (beta = 1), and the accelerator's decay is 1 - 2^-k "
            "for k in 1..16; the nearest is k = 16: make it a LIF with tau = dt * 2^16 "
            "if that is close enough"
        )
    else:
        why = f"the accelerator runs Input -> (Linear|Affine -> LIF)... -> Output; {expected}"
    return NIRError(f"node {name!r} ({kind}): {why}")


def _split(chain: list[tuple[str, Any]]) -> tuple[int | None, list[tuple[str, Any, str, Any]]]:
    """The Input's element count (None without an Input node) and the (weight, neuron)
    node pairs; a full Flatten right after the Input (snnTorch writes one) is accepted,
    since flattening row-major is the order of our pixels."""
    nir = _nir()
    body, n_input = list(chain), None
    if body and isinstance(body[0][1], nir.Input):
        shape = np.asarray(body.pop(0)[1].input_type["input"]).reshape(-1)
        n_input = int(np.prod(shape))
        if body and isinstance(body[0][1], nir.Flatten):
            name, flat = body.pop(0)
            if int(flat.start_dim) != 0 or int(flat.end_dim) not in (-1, len(shape) - 1):
                raise NIRError(f"node {name!r} (Flatten) must flatten the whole input")
        elif len(shape) > 1:
            raise NIRError(f"the Input of shape {tuple(shape)} needs a Flatten before a Linear")
    if body and isinstance(body[-1][1], nir.Output):
        body.pop()
    pairs = []
    for i in range(0, len(body), 2):
        w_name, w_node = body[i]
        if not isinstance(w_node, nir.Linear | nir.Affine):
            raise _refusal(w_name, w_node, "a Linear or Affine is needed here")
        if i + 1 == len(body):
            raise NIRError(f"node {w_name!r} is not followed by a LIF: its outputs never spike")
        n_name, n_node = body[i + 1]
        if not isinstance(n_node, nir.LIF):
            raise _refusal(n_name, n_node, "a LIF is needed here")
        pairs.append((w_name, w_node, n_name, n_node))
    if not pairs:
        raise NIRError("the graph holds no Linear -> LIF layer")
    return n_input, pairs


def _weight(name: str, node: Any) -> np.ndarray:
    """The (n_out, n_in) matrix of a Linear, or of an Affine whose bias is zero."""
    nir = _nir()
    if isinstance(node, nir.Affine):
        bias = np.asarray(node.bias, dtype=np.float64)
        if np.any(bias != 0):
            raise NIRError(
                f"node {name!r} (Affine) has a non-zero bias (largest |b| = "
                f"{np.abs(bias).max():.4g}): the accelerator's neurons have no bias input"
            )
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2:
        raise NIRError(f"node {name!r}: weight of shape {w.shape}, expected (n_out, n_in)")
    if not np.isfinite(w).all():
        raise NIRError(f"node {name!r}: the weights hold NaN or infinity")
    return w


def _per_neuron(name: str, node: Any, field: str, n: int) -> np.ndarray:
    """A LIF parameter as one float64 per neuron; a scalar (snnTorch's) applies to all."""
    a = np.asarray(getattr(node, field), dtype=np.float64)
    if not np.isfinite(a).all():
        raise NIRError(f"node {name!r}: {field} holds NaN or infinity")
    if a.size == 1:
        return np.full(n, a.reshape(-1)[0])
    if a.shape != (n,):
        raise NIRError(f"node {name!r}: {field} has shape {a.shape}, its layer has {n} neurons")
    return a


def _lif(name: str, node: Any, n: int, dt: float) -> tuple[int, np.ndarray, np.ndarray]:
    """(k, input gain, threshold per neuron) of a LIF discretised at ``dt``: decay
    ``1 - dt / tau`` must be ``1 - 2^-k``; the gain ``dt * r / tau`` is taken as ``r * 2^-k``
    (the same within the tolerance, and exactly 1 for ``r = 2^k``)."""
    fields = ("tau", "r", "v_leak", "v_threshold", "v_reset")
    p = {f: _per_neuron(name, node, f, n) for f in fields}
    if np.any(p["v_leak"] != 0):
        raise NIRError(
            f"node {name!r}: v_leak = {p['v_leak'][p['v_leak'] != 0][0]:g}, not 0: "
            "the accelerator's membranes decay towards 0"
        )
    if np.any(p["v_reset"] != 0):
        raise NIRError(
            f"node {name!r}: v_reset = {p['v_reset'][p['v_reset'] != 0][0]:g}, not 0: "
            "the accelerator resets by subtracting the threshold (docs/nir.md)"
        )
    for field in ("tau", "r", "v_threshold"):
        if np.any(p[field] <= 0):
            raise NIRError(f"node {name!r}: {field} must be > 0, got {p[field].min():g}")
    ratio = p["tau"] / dt
    ks = np.rint(np.log2(ratio)).astype(np.int64)
    k = int(ks[0])
    bad = np.abs(ratio / np.exp2(ks) - 1) > DECAY_TOLERANCE
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        beta, near = 1 - dt / p["tau"][j], int(ks[j])
        raise NIRError(
            f"node {name!r}: decay per step 1 - dt/tau = {beta:.6g} (dt = {dt:g}, tau = "
            f"{p['tau'][j]:g}) is not 1 - 2^-k; the nearest is k = {near} (beta = "
            f"{1 - 2.0**-near:g}, tau = dt * 2^{near}); or pass the graph's dt"
        )
    if np.any(ks != k):
        raise NIRError(
            f"node {name!r}: its neurons decay with different k ({k} and "
            f"{int(ks[ks != k][0])}); the accelerator has one decay"
        )
    return k, p["r"] / 2.0**k, p["v_threshold"]


def import_nir(
    source: str | Path | nir.NIRGraph, config: Config | None = None, dt: float | None = None
) -> tuple[Config, list[np.ndarray]]:
    """Config and float64 weights of a NIR chain ``[Input] -> (Linear|Affine -> LIF)... ->
    [Output]``, for ``GoldenNet.from_float`` (golden/) and the RTL.

    The graph gives the layer sizes and the decay k; everything NIR cannot carry (T,
    learning rule, formats, hardware) comes from ``config``, else from the config a
    graph of ours stores, else from the default preset. Each neuron's gain ``r * 2^-k``
    and threshold ``v_threshold`` are folded into its row of weights, ``w * r * 2^-k *
    mempot_thres / v_threshold``, which leaves its spikes unchanged (the membrane is
    linear in its input) and is exact for the graphs :func:`export_nir` writes. ``dt``
    defaults to the one a graph of ours stores, else :data:`DEFAULT_DT`. Anything the
    accelerator cannot run is a :class:`NIRError` of one line.
    """
    graph = read_graph(source)
    meta = _own_metadata(graph)
    base = config or stored_config(graph) or PRESETS["default"]
    if dt is None:
        try:
            dt = float(meta.get("dt", DEFAULT_DT))
        except (TypeError, ValueError) as exc:
            raise NIRError(f"the graph's metadata dt is not a number: {_why(exc)}") from exc
    if not (math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds, got {dt}")
    n_input, pairs = _split(_chain(graph))
    sizes: list[int] = []
    decays, rows = [], []
    for w_name, w_node, n_name, n_node in pairs:
        w = _weight(w_name, w_node)
        given = sizes[-1] if sizes else (n_input if n_input is not None else w.shape[1])
        if w.shape[1] != given:
            raise NIRError(f"node {w_name!r} takes {w.shape[1]} inputs, it is given {given}")
        k, gain, theta = _lif(n_name, n_node, w.shape[0], dt)
        sizes.append(w.shape[0])
        decays.append((n_name, k))
        rows.append((w, gain, theta))
    n_in = rows[0][0].shape[1]
    if n_in != INPUT_PIXELS:
        raise NIRError(
            f"the network takes {n_in} inputs; the accelerator's encoder takes "
            f"{INPUT_PIXELS} pixels (28 x 28 images)"
        )
    ks = sorted({k for _, k in decays})
    if len(ks) > 1:
        raise NIRError(
            f"layers decay with different k ({', '.join(f'{n}: {k}' for n, k in decays)}); "
            "the accelerator has one decay for all layers"
        )
    try:
        cfg = base.replace(network={"layers": (n_in, *sizes), "mempot_decay": ks[0]})
    except ConfigError as exc:
        raise NIRError(f"the accelerator's config refuses this network: {exc}") from exc
    theta = cfg.network.mempot_thres
    weights = [w * gain[:, None] * (theta / th)[:, None] for w, gain, th in rows]
    for (w_name, *_), w in zip(pairs, weights, strict=True):
        if not np.isfinite(w).all():
            raise NIRError(f"node {w_name!r}: weights overflow when scaled to the threshold")
    return cfg, weights


# ------------------------------------------------------------------------ command line


def _saturated(weights: list[np.ndarray], ints: list[np.ndarray], weight_frac: int) -> int:
    """How many weights the quantisation saturated (``python -m model export`` reports it)."""
    scale = 2.0**weight_frac
    return sum(int((np.rint(w * scale) != q).sum()) for w, q in zip(weights, ints, strict=True))


def _cmd_export(args: argparse.Namespace) -> None:
    out = export_nir(args.model_path, args.out, args.dt, args.force)
    print(f"wrote {out} (dt = {args.dt:g} s; T, reset by subtraction and formats in metadata)")


def _cmd_import(args: argparse.Namespace) -> None:
    if args.layers is not None or args.mempot_decay is not None:
        raise UserError("--layers and --mempot-decay come from the NIR graph; leave them out")
    check_target(args.out, args.force)
    graph = read_graph(args.model_path)
    cfg, weights = import_nir(graph, build_config(args, stored_config(graph)), args.dt)
    c = constants(cfg)
    ints = quantize_weights(weights, c)
    clipped = _saturated(weights, ints, c.weight_frac)
    extra = {"source": str(args.model_path), "clipped_weights": clipped}
    path = write_export(args.out, cfg, ints, extra, args.force)
    net = cfg.network
    print(
        f"wrote {path}: layers {'-'.join(map(str, net.layers))}, decay 1 - 2^-"
        f"{net.mempot_decay}, T = {net.tsteps} ({clipped} weights saturated)"
    )
    print(f"run it: python -m golden eval --model-path {path}")


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.nir_io",
        description="Write a trained network as a NIR graph, or import one (docs/nir.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="checkpoint or export folder -> .nir file")
    exp.add_argument(
        "--model-path",
        type=Path,
        required=True,
        help="trainer checkpoint (ours or the reference's) or an export folder",
    )
    exp.add_argument("--out", type=Path, required=True, help="the .nir file to write")
    exp.add_argument(
        "--dt",
        type=_positive_float,
        default=DEFAULT_DT,
        help=f"time step the LIF time constants are written for, s ({DEFAULT_DT:g})",
    )
    exp.add_argument("--force", action="store_true", help="replace a .nir file written before")
    imp = sub.add_parser("import", help=".nir file -> export folder for golden/ and rtl/")
    imp.add_argument("--model-path", type=Path, required=True, help="the .nir file to read")
    imp.add_argument("--out", type=Path, required=True, help="export folder to write")
    imp.add_argument(
        "--dt",
        type=_positive_float,
        help=f"time step to discretise at, s (default: the graph's own, else {DEFAULT_DT:g})",
    )
    imp.add_argument("--force", action="store_true", help="replace an earlier export")
    add_network_flags(imp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m model.nir_io``; user errors exit 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with user_errors(parser):
        if args.command == "export":
            _cmd_export(args)
        else:
            _cmd_import(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
