"""``python -m sim.host_link_server``: the host link of a config in a simulator, on a
pseudo-terminal, until told to stop. desire.host starts it as a child process for
``--sim verilator`` / ``--sim icarus`` (docs/host.md).

    python -m sim.host_link_server --simulator verilator --config cfg.json --folder DIR

Builds the ``host_link`` block through :func:`sim.runner.run` (or reuses the build: the
weights go over the link, so one build serves every export of a config) and runs its
bench, sim/test_host_link.py, which publishes the pseudo-terminal's path as ``DIR/pty``
and stops when ``DIR/stop`` appears. Exit status 0 when the bench ended cleanly, 1 when
the build or the simulation failed (the reason is the last line of the output), 2 for a
bad command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from desire.cli import user_errors
from desire.config import load_config
from sim.runner import SIMULATORS, available, run
from sim.test_host_link import ENV_DIR

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.host_link_server", description=__doc__)
    parser.add_argument("--simulator", choices=SIMULATORS, required=True)
    parser.add_argument("--config", type=Path, required=True, help="the link's config (JSON)")
    parser.add_argument("--folder", type=Path, required=True, help="shared with the host")
    args = parser.parse_args(argv)
    with user_errors(parser):
        cfg = load_config(args.config)
    if not available(args.simulator):
        print(f"{args.simulator} is not installed", file=sys.stderr)
        return 1
    env = {ENV_DIR: str(args.folder.resolve())}
    try:
        result = run("host_link", args.simulator, cfg, seed=0, extra_env=env)
    except (Exception, SystemExit) as exc:  # a failed build or simulator: the runner's own
        print(f"the {args.simulator} build or run failed ({exc!r}); see above", file=sys.stderr)
        return 1
    if not result.ok:
        print(f"the {args.simulator} bench failed; its output above says why", file=sys.stderr)
        return 1
    print(f"{args.simulator}: the bench ended cleanly ({result.seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
