"""Formal proofs (SymbiYosys) of make test: the small configs of tests/formal/proofs.py.

Every proof marked ``small`` runs here, with one mutant per proof that must break it
(the first of its entries in ``MUTANTS``: the proof is not vacuous); ``make formal``
runs every proof, the larger configs and all mutants (docs/formal.md). The sby runs go
two at a time. Without the tools (the ``formal`` extra, berkeley-abc) the tests skip
and say what is missing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from golden.prng import dropout_mask
from tests.formal import abc_compat
from tests.formal.proofs import MUTANTS, PROOFS, Mutant, proof
from tests.formal.runner import Result, assertions, check, missing_tools, prepare

SMALL = [p for p in PROOFS if p.small]
#: One mutant per small proof: the first listed for it.
SMOKE: list[Mutant] = []
for _p in SMALL:
    SMOKE += [m for m in MUTANTS if m.proof == _p.name][:1]

_tools = pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Result, Path]]:
    """Result and work folder of every small proof (by name) and smoke mutant
    (``mutant<k>``).

    The harnesses are elaborated here, one after the other (a mutant may patch a module
    while it is); only the sby runs go in parallel.
    """
    root = tmp_path_factory.mktemp("formal")
    jobs = [(p.name, p, prepare(p, root / p.name)) for p in SMALL]
    for k, mut in enumerate(SMOKE):
        with mut.harness() as harness:
            p = proof(mut.proof)
            jobs.append((f"mutant{k}", p, prepare(p, root / f"mutant{k}", harness=harness)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: check(job[1], job[2], timeout=300), jobs))
    return {key: (result, folder) for (key, _, folder), result in zip(jobs, results, strict=True)}


@_tools
@pytest.mark.parametrize("name", [p.name for p in SMALL])
def test_proof_passes(outcomes: dict[str, tuple[Result, Path]], name: str) -> None:
    result, _ = outcomes[name]
    assert result.status == "PASS", f"{name}: {result.status} {result.failed}; log {result.log}"


@_tools
@pytest.mark.parametrize("k", range(len(SMOKE)), ids=[f"{m.proof}-{m.breaks}" for m in SMOKE])
def test_mutant_breaks_its_property(outcomes: dict[str, tuple[Result, Path]], k: int) -> None:
    mut = SMOKE[k]
    result, _ = outcomes[f"mutant{k}"]
    assert result.status == "FAIL", f"the mutant passed {mut.proof}: {mut.breaks!r} is vacuous"
    assert result.failed == (mut.breaks,), f"log {result.log}"


@_tools
def test_every_property_has_a_mutant(outcomes: dict[str, tuple[Result, Path]]) -> None:
    """Each assertion of each small prove-mode harness is broken by some mutant (listed
    for one config of that harness: the variants share its properties)."""

    def harness(name: str) -> type:
        return type(proof(name).build())

    for p in SMALL:
        if p.mode != "prove":
            continue
        names = set(assertions(outcomes[p.name][1]))
        broken = {m.breaks for m in MUTANTS if harness(m.proof) is harness(p.name)}
        assert names <= broken, f"{p.name}: no mutant for {sorted(names - broken)}"


def test_dropout_rule_is_golden() -> None:
    """The harness's rule (keep iff top prob_bits of the draw >= drop_p) is golden's, at
    the boundary draws of every proved threshold."""

    class Draws:
        def __init__(self, words: list[int]) -> None:
            self.words = words

        def draw(self, n: int) -> np.ndarray:
            return np.array(self.words[:n], dtype=np.uint32)

    bits = 16
    for p in (1, 3277, 26214, (1 << bits) - 1):
        at = p << (32 - bits)
        words = [at, at - 1, at | 0xFFFF, (at - 1) & ~0xFFFF]
        keep = dropout_mask(Draws(words), len(words), p, bits)
        assert keep.tolist() == [(w >> (32 - bits)) >= p for w in words] == [1, 0, 1, 0]


def test_abc_compat_rewrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wrapper drops ``pdr -l`` and puts ``# DONE`` on a line of its own."""
    calls: list[list[str]] = []
    monkeypatch.setattr(abc_compat.shutil, "which", lambda name: f"/bin/{name}")
    monkeypatch.setattr(abc_compat.subprocess, "call", lambda args: calls.append(args) or 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trace.aiw").write_text("0000\n01\n10# DONE\n")
    script = "read_aiger a.aig; fold; strash; pdr -v -l; write_cex -a trace.aiw"
    assert abc_compat.main(["-c", script]) == 0
    assert calls == [["/bin/berkeley-abc", "-c", script.replace("pdr -v -l", "pdr -v")]]
    assert (tmp_path / "trace.aiw").read_text() == "0000\n01\n10\n# DONE\n"
