"""``python -m tests.formal``: run the formal proofs and the mutants, print the table.

``make formal`` runs everything: every proof of :data:`tests.formal.proofs.PROOFS`,
then every mutant of :data:`~tests.formal.proofs.MUTANTS` (each must fail on the
property it breaks). ``--each`` also proves every assertion of the prove-mode proofs
on its own, for the time each takes (docs/formal.md). Work folders go to ``--out``
(default build/formal), one per run, with sby's log and, for a failure, the
counterexample's VCD.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth.hdl import UnusedElaboratable

from tests.formal.proofs import MUTANTS, PROOFS, Mutant, proof
from tests.formal.runner import Proof, assertions, check, missing_tools, prepare


def _prepare_mutant(k: int, mut: Mutant, out: Path) -> Path:
    with mut.harness() as harness:
        return prepare(proof(mut.proof), out / f"mutant{k:02d}_{mut.proof}", harness=harness)


def _each(pool: ThreadPoolExecutor, proved: list[tuple[Proof, Path]]) -> tuple[int, int]:
    """Prove every assertion of each proof alone and print its time; (runs, failures)."""
    runs = []
    for p, folder in proved:
        for k, name in enumerate(assertions(folder)):
            alone = prepare(p, folder.with_name(f"{p.name}__{k}"), harness=p.build(only=name))
            runs.append((p, name, alone))
    print(f"\n{'proof':<22} {'assertion':<58} {'time/s':>7}  result")
    failures = 0
    for (p, name, _), result in zip(runs, pool.map(lambda r: check(r[0], r[2]), runs), strict=True):
        print(f"{p.name:<22} {name:<58} {result.seconds:7.1f}  {result.status}", flush=True)
        failures += result.status != "PASS"
    return len(runs), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.formal", description=__doc__)
    parser.add_argument("names", nargs="*", help="proofs to run (default: all)")
    parser.add_argument("--small", action="store_true", help="only the proofs of make test")
    parser.add_argument("--no-mutants", action="store_true", help="skip the mutants")
    parser.add_argument("--each", action="store_true", help="also each assertion alone")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="sby runs at once (2)")
    parser.add_argument("--out", type=Path, default=Path("build/formal"))
    args = parser.parse_args(argv)
    # harnesses elaborate some blocks by hand, and the dropout one replaces the block's
    # PRNG: components Amaranth never saw elaborated, by design (as in pyproject.toml)
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    why = missing_tools()
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    proofs = [p for p in PROOFS if (not args.names or p.name in args.names)]
    proofs = [p for p in proofs if p.small or not args.small]
    if args.names and len(proofs) != len(set(args.names)):
        known = ", ".join(p.name for p in PROOFS)
        print(f"unknown proof among {args.names}; known: {known}", file=sys.stderr)
        return 2
    chosen = {p.name for p in proofs}
    mutants = [] if args.no_mutants else [m for m in MUTANTS if m.proof in chosen]

    runs, failures = len(proofs) + len(mutants), 0
    print(f"{'proof':<22} {'engine':<13} {'depth':>5} {'time/s':>7}  result  block")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        dirs = [prepare(p, args.out / p.name) for p in proofs]
        for p, result in zip(proofs, pool.map(check, proofs, dirs), strict=True):
            depth = "-" if p.depth is None else str(p.depth)
            note = f"  {', '.join(result.failed)}" if result.failed else ""
            print(
                f"{p.name:<22} {p.engine:<13} {depth:>5} {result.seconds:7.1f}  "
                f"{result.status:<6}  {p.block}{note}",
                flush=True,
            )
            failures += result.status != "PASS"
        if args.each:
            proved = [(p, d) for p, d in zip(proofs, dirs, strict=True) if p.mode == "prove"]
            more, failed = _each(pool, proved)
            runs, failures = runs + more, failures + failed
        if mutants:
            print(f"\n{'mutant of':<22} {'must break':<58} result")
            dirs = [_prepare_mutant(k, mut, args.out) for k, mut in enumerate(mutants)]
            results = pool.map(check, [proof(mut.proof) for mut in mutants], dirs)
            for mut, result in zip(mutants, results, strict=True):
                broke = result.status == "FAIL" and result.failed == (mut.breaks,)
                print(f"{mut.proof:<22} {mut.breaks:<58} {'broken' if broke else result.status}")
                failures += not broke
    print(f"\n{runs - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
