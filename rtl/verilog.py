"""Verilog of the accelerator and its blocks for a config: ``python -m rtl.verilog``.

Every file starts with a comment stating the config it was built from, so a
netlist can always be traced back to its parameters, and the Verilator lint
waivers it needs (see :data:`LINT_WAIVERS`, each with its reason).

:func:`build` writes a folder that is read as a whole: every module name in it
is unique (``iverilog *.v`` compiles it), a README.md says which file is the
design and what the others are for, and ``ports.md`` / ``ports.json`` describe
the top's ports, generated from its Amaranth signature so that they cannot drift
from the RTL. It writes only into a folder that is new, empty or its own
(:func:`desire.outdir.claim_output_dir`), every file atomically.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.lib import wiring

from desire.atomic import atomic_write_text
from desire.cli import user_errors
from desire.config import PRESETS, Config, load_config
from desire.outdir import claim_output_dir
from rtl.accelerator import Accelerator
from rtl.axi_shell import AxiShell
from rtl.desire_unit import DesireUnit
from rtl.encoder import Encoder
from rtl.host_link import HostLink
from rtl.neuron_core import NeuronCore
from rtl.port_reference import port_reference, ports_json, ports_markdown
from rtl.shared_pool import shared_core
from rtl.uart import MIN_DIVISOR
from rtl.update_unit import UpdateUnit

__all__ = [
    "BLOCKS",
    "HOST_LINK_DIVISOR",
    "LINT_WAIVERS",
    "MANIFEST",
    "README",
    "TOOL",
    "OutputFile",
    "build",
    "generate",
    "main",
    "module_name",
    "render",
]

#: Name the output folders are marked with (:mod:`desire.outdir`).
TOOL = "rtl.verilog"
#: Which file of a build folder is which: for people, and for scripts (and the next run's
#: clean-up).
README = "README.md"
MANIFEST = "files.json"

#: Blocks that can be written, and their Verilog top-module names.
BLOCKS: dict[str, str] = {
    "accelerator": "desire_accelerator",
    "encoder": "desire_encoder",
    "neuron_core": "desire_neuron_core",
    "desire_unit": "desire_desire_unit",
    "update_unit": "desire_update_unit",
    "axi_shell": "desire_axi_shell",
    "host_link": "desire_host_link",
}

#: Clock cycles per UART bit of the ``host_link`` block: the fewest the UART allows. Only
#: the ratio of clock to baud rate matters in simulation (sim/test_host_link.py bridges the
#: lines to a pseudo-terminal), and the fewer cycles a byte takes, the faster a run.
HOST_LINK_DIVISOR = MIN_DIVISOR

#: Warnings of ``verilator --lint-only -Wall`` switched off at the top of every file (as
#: ``/* verilator lint_off NAME */`` pragmas), with the reason for each. All of them come from
#: how yosys' ``write_verilog`` prints a netlist that Amaranth already width-checked; none is
#: waived for hand-written code.
LINT_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": "write_verilog leaves operand zero/sign extension implicit where Amaranth's "
    "arithmetic fixed the result width (8-bit pixel + 9-bit accumulator, lane-mask shifts).",
    "WIDTHTRUNC": "the same for truncation: e.g. a dynamic word select is printed as a wide "
    "shift assigned to the narrow word, and 1-bit tests of a vector as `!vector`.",
    "UNUSEDSIGNAL": "ports and intermediate nets keep all bits even where only some are read "
    "(upper address bits in register decoding, padding lanes); synthesis removes them.",
    "CASEINCOMPLETE": "processes assign a default before every `case`, so a case without "
    "`default` cannot infer a latch.",
    "PROCASSINIT": "registers carry their Amaranth reset value as a declaration initialiser "
    "and are also assigned in `always` blocks; that is the intended power-on value.",
    "ASCRANGE": "a zero-width Amaranth signal (the block counter of a core whose neurons fit "
    "one block, n_out <= lanes) is printed as `[-1:0]`; nothing reads or drives it.",
    "DECLFILENAME": "one file holds the top and its submodules, named after the Amaranth "
    "hierarchy (`top.core0`), not after the file.",
}


def module_name(block: str, layer: int = 0) -> str:
    """Top-module name of ``block`` in a :func:`build` folder.

    Why per layer for neuron cores: every core file would otherwise declare
    ``desire_neuron_core`` (and ``desire_neuron_core.weights``, ...), and the folder
    would not compile as a whole. Submodules are named after their top, so unique
    tops make every module of the folder unique.
    """
    return f"{BLOCKS[block]}{layer}" if block == "neuron_core" else BLOCKS[block]


def generate(
    cfg: Config,
    block: str = "accelerator",
    *,
    weights: list[np.ndarray] | None = None,
    layer: int = 0,
    name: str | None = None,
) -> str:
    """Verilog text of ``block`` for ``cfg``, with the config header.

    ``weights`` initialise the weight memories (``$readmemh``-style init data);
    ``layer`` picks the layer of a ``neuron_core``; ``name`` is the top module's name
    (default ``BLOCKS[block]``; Amaranth names the submodules ``<name>.<path>``).
    """
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {sorted(BLOCKS)}, not {block!r}")
    top: wiring.Component
    if block == "accelerator":
        top = Accelerator(cfg, weights)
    elif block == "encoder":
        top = Encoder(cfg.network.layers[0], cfg.hardware.lanes)
    elif block == "desire_unit":
        top = DesireUnit.for_config(cfg)
    elif block == "update_unit":
        top = UpdateUnit.for_config(cfg)
    elif block == "axi_shell":
        top = AxiShell(cfg, weights)
    elif block == "host_link":  # what a board top wraps, its UART at HOST_LINK_DIVISOR
        top = HostLink(cfg, weights, clk_hz=1e6, baud=1e6 / HOST_LINK_DIVISOR)
    elif cfg.hardware.architecture == "shared":  # the one core of every layer, as built
        top = shared_core(cfg, weights)
    else:
        top = NeuronCore.for_layer(cfg, layer, None if weights is None else weights[layer])
    text = verilog.convert(top, name=name or BLOCKS[block], emit_src=False)
    return _header(cfg, block, layer, weights is not None) + _kick_combinational(text)


def _kick_combinational(text: str) -> str:
    """Make yosys' time-zero trigger of ``always @*`` blocks change value at time 0.

    yosys lists a dummy ``reg ... = 0`` in every ``always @*`` so that the blocks
    run once at time 0, but Icarus applies a declaration initialiser before the
    blocks wait on it: a combinational output depending only on registers that
    keep their initial value (the pixel stream's ``ready``) would stay X until
    the first register changes. An ``initial`` assignment from X to 0 is an
    event every simulator sees; synthesis ignores it (same value).
    """
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("reg \\$auto$") and stripped.endswith("= 0;"):
            name = stripped[len("reg ") : -len("= 0;")].strip()
            line = f"{line.split('reg')[0]}reg {name} ;\n  initial {name} = 1'h0;\n"
        out.append(line)
    return "".join(out)


def _header(cfg: Config, block: str, layer: int, has_weights: bool) -> str:
    what = f"{block} (layer {layer})" if block == "neuron_core" else block
    lines = [
        f"Generated by rtl.verilog: {what} of the desire-backpropagation accelerator.",
        f"Weight memories: {'initialised from the given weights' if has_weights else 'zero'}.",
        "Config:",
        *cfg.to_json().splitlines(),
        "Lint waivers (Verilator -Wall), each with its reason:",
    ]
    text = "".join(f"// {line}\n" for line in lines)
    for name, why in LINT_WAIVERS.items():
        text += f"// {name}: {why}\n/* verilator lint_off {name} */\n"
    return text


# ---------------------------------------------------------------- output folder


@dataclass(frozen=True)
class OutputFile:
    """One file of a :func:`build` folder: its name, top module (Verilog only), purpose, text."""

    name: str
    module: str | None
    what: str
    text: str


def _verilog_files(cfg: Config, weights: list[np.ndarray] | None) -> list[OutputFile]:
    """The accelerator (the design) first, then each block as a top of its own."""
    layers = cfg.network.layers
    training = cfg.hardware.training
    block_note = "its own top, for unit simulation (sim/) or synthesis of the block alone"
    unit_note = block_note if training else "not in the accelerator: hardware.training is false"
    if cfg.hardware.architecture == "shared":
        net = "-".join(map(str, layers))
        cores = [("neuron_core", 0, f"the neuron core of every layer ({net}); {block_note}")]
    else:
        cores = [
            (
                "neuron_core",
                l,
                f"neuron core of layer {l} ({layers[l]} -> {layers[l + 1]}); {block_note}",
            )
            for l in range(len(layers) - 1)
        ]
    blocks: list[tuple[str, int, str]] = [
        ("encoder", 0, f"encoder (pixels to input spikes); {block_note}"),
        *cores,
        ("desire_unit", 0, f"desire unit (training: desire of every neuron); {unit_note}"),
        ("update_unit", 0, f"update unit (training: STDP weight update); {unit_note}"),
    ]
    top = module_name("accelerator")
    files = [
        OutputFile(
            f"{top}.v",
            top,
            "THE DESIGN: the self-contained accelerator top with every block inside; "
            "ports in ports.md",
            generate(cfg, weights=weights, name=top),
        )
    ]
    for block, layer, what in blocks:
        name = module_name(block, layer)
        text = generate(cfg, block, weights=weights, layer=layer, name=name)
        files.append(OutputFile(f"{name}.v", name, what, text))
    return files


#: The two lists of a folder's files, and what they are.
_LISTS = {README: "this list", MANIFEST: "this list, for scripts"}


def _listing(files: list[OutputFile]) -> list[tuple[str, str, str]]:
    """(file, top module, what) of every file of the folder, the lists included."""
    return [(f.name, f.module or "", f.what) for f in files] + [
        (name, "", what) for name, what in _LISTS.items()
    ]


def _readme(cfg: Config, files: list[OutputFile]) -> str:
    top = files[0]
    net = "-".join(map(str, cfg.network.layers))
    lines = [
        f"# Verilog of the desire-backpropagation accelerator, {net}, {cfg.hardware.lanes} lanes",
        "",
        f"Written by rtl.verilog for the config in config.json. **`{top.name}` is the design**: "
        f"module `{top.module}` holds everything (encoder, neuron cores and, with "
        "hardware.training, the learning units); synthesise or simulate that file alone. "
        "Its ports: ports.md (ports.json for scripts).",
        "",
        "The other Verilog files are the blocks again, each as a top of its own, for unit "
        "simulation and per-block synthesis; the accelerator does not need them. Every "
        "module name in this folder is unique, so `iverilog *.v` compiles them together.",
        "",
        "| file | top module | what |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {module} | {what} |" for name, module, what in _listing(files)]
    return "\n".join(lines) + "\n"


def _manifest(files: list[OutputFile]) -> str:
    listed = [{"file": n, "module": m or None, "what": w} for n, m, w in _listing(files)]
    return json.dumps({"tool": TOOL, "top": files[0].name, "files": listed}, indent=2) + "\n"


def render(cfg: Config, weights: list[np.ndarray] | None = None) -> list[OutputFile]:
    """Every file of a :func:`build` folder, in memory, the accelerator first."""
    top = module_name("accelerator")
    acc = Accelerator(cfg)  # no weights: they change no port and no value after reset
    ports = port_reference(acc)
    files = [
        *_verilog_files(cfg, weights),
        OutputFile(
            "config.json",
            None,
            "the config every file was built from",
            json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n",
        ),
        OutputFile(
            "ports.md",
            None,
            f"ports of {top}: name, direction, width, value after reset, polarity, meaning, "
            "struct bit layouts",
            ports_markdown(acc, ports, top),
        ),
        OutputFile(
            "ports.json", None, "the same as ports.md, for scripts", ports_json(acc, ports, top)
        ),
        OutputFile("registers.md", None, "the bus registers of this config", acc.regs.markdown()),
        OutputFile("registers.h", None, "the same as #defines, for C hosts", acc.regs.c_header()),
    ]
    return [
        *files,
        OutputFile(README, None, _LISTS[README], _readme(cfg, files)),
        OutputFile(MANIFEST, None, _LISTS[MANIFEST], _manifest(files)),
    ]


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete the files the previous run's manifest lists that this run does not write.

    Why: a config with fewer layers writes fewer core files, and a leftover core of
    the old config would sit in the folder as if it belonged to the new one. Only
    plain names from our own manifest are touched (the folder is claimed as ours).
    """
    try:
        listed = json.loads((out / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for entry in listed:
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name in keep or name != Path(name).name:
            continue
        if not name.startswith(".") and (out / name).is_file():
            (out / name).unlink()


def build(cfg: Config, out: Path, weights: list[np.ndarray] | None = None) -> list[Path]:
    """Write every file of :func:`render` into ``out``; return the Verilog files (top first).

    ``out`` must be new, empty or an earlier ``rtl.verilog`` folder
    (:class:`~desire.errors.OutputError` otherwise). It is checked before rendering,
    which takes seconds to minutes, and claimed only once everything rendered, so a
    failure leaves nothing behind.
    """
    out = Path(out)
    claim_output_dir(out, TOOL, create=False)
    files = render(cfg, weights)
    claim_output_dir(out, TOOL)
    _remove_stale(out, {f.name for f in files})
    for f in files:
        atomic_write_text(out / f.name, f.text)
    return [out / f.name for f in files if f.module is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtl.verilog", description=__doc__)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="TOML or JSON config file")
    src.add_argument("--preset", choices=sorted(PRESETS), help="named config (default: default)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/verilog"),
        help="output folder: new, empty or written by rtl.verilog before",
    )
    args = parser.parse_args(argv)
    with user_errors(parser):
        cfg = load_config(args.config, None if args.config else args.preset)
        files = build(cfg, args.out)
    for path in files:
        print(path)
    print(f"{args.out / README}: which file is which; {args.out / 'ports.md'}: the ports")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
