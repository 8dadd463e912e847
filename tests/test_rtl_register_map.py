"""rtl.register_map: register addresses, STATUS bits, MODE values and weight addresses."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rtl.register_map import AddressMap, Mode, RegisterMap, Status


def test_register_map() -> None:
    regs = RegisterMap(3)
    assert (regs.STATUS, regs.CYCLES, regs.STALLS) == (0, 1, 2)
    assert (regs.THRESHOLD, regs.EVENTS, regs.MODE, regs.size) == (4, 7, 10, 17)
    assert (regs.LR_INT, regs.CYCLES_BACKWARD, regs.CYCLES_UPDATE) == (11, 12, 13)
    assert (regs.DROPOUT_STATE, regs.ROUNDING_STATE, regs.WEIGHT_BASE) == (14, 15, 16)


def test_status_and_mode_values() -> None:
    assert (Status.BUSY, Status.RESULT, Status.ERR_BUSY, Status.ERR_WRITE) == (1, 2, 4, 8)
    assert Status.ERR_MEMORY == 16
    assert (Mode.INFERENCE, Mode.TRAINING) == (0, 1)


def test_address_map_fields() -> None:
    """Fields as wide as their largest value needs, lane lowest, the MSB for weights."""
    amap = AddressMap([12 * 3, 20 * 2], 5)
    assert (amap.lane_bits, amap.word_bits, amap.layer_bits) == (3, 6, 1)
    assert amap.addr_bits == 1 + 10
    assert amap.weight(1, 39, 4) == (1 << 10) | (1 << 9) | (39 << 3) | 4
    assert amap.weight(0, 0, 0) == 1 << 10
    assert amap.regs.size == RegisterMap(2).size
    # one layer, one lane, one word: zero-width fields, the registers set the width
    tiny = AddressMap([1], 1)
    assert (tiny.lane_bits, tiny.word_bits, tiny.layer_bits) == (0, 0, 0)
    assert tiny.addr_bits == 1 + (tiny.regs.size - 1).bit_length()
    assert tiny.weight(0, 0, 0) == 1 << (tiny.addr_bits - 1)


def test_address_map_addresses_are_distinct() -> None:
    amap = AddressMap([6, 4, 9], 3)
    addrs = {
        amap.weight(l, w, j) for l, d in enumerate(amap.depths) for w in range(d) for j in range(3)
    }
    assert len(addrs) == (6 + 4 + 9) * 3
    assert all(a >> (amap.addr_bits - 1) == 1 for a in addrs)
    assert max(addrs) < 1 << amap.addr_bits


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="n_layers must be >= 1"):
        RegisterMap(0)
    with pytest.raises(TypeError, match="depths must be a non-empty sequence"):
        AddressMap([], 4)
    with pytest.raises(TypeError, match="depths must be a non-empty sequence"):
        AddressMap(8, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"depths\[1\] must be >= 1, not 0"):
        AddressMap([3, 0], 4)
    with pytest.raises(ValueError, match="lanes must be >= 1, not 0"):
        AddressMap([3], 0)
    amap = AddressMap([6, 4], 2)
    with pytest.raises(ValueError, match="word must be >= 0 and <= 3, not 4"):
        amap.weight(1, 4, 0)
    with pytest.raises(ValueError, match="lane must be >= 0 and <= 1, not 2"):
        amap.weight(0, 0, 2)
    with pytest.raises(ValueError, match="layer must be >= 0 and <= 1, not 2"):
        amap.weight(2, 0, 0)


def test_every_register_has_an_entry_and_its_own_address() -> None:
    regs = RegisterMap(3)
    names = {k for k, v in vars(regs).items() | vars(RegisterMap).items() if k.isupper()}
    assert names == {r.name for r in regs.registers}
    words = [r.address + i for r in regs.registers for i in range(r.count)]
    assert len(words) == len(set(words)) and max(words) < regs.size
    assert all(getattr(regs, r.name) == r.address for r in regs.registers)


def test_docs_hold_the_generated_table() -> None:
    """docs/architecture.md's register table is RegisterMap(2).markdown(), not a hand copy."""
    docs = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    assert RegisterMap(2).markdown() in docs


def test_c_header_compiles_with_the_addresses(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    regs = RegisterMap(2)
    (tmp_path / "registers.h").write_text(regs.c_header())
    checks = " && ".join(f"DESIRE_{r.name} == {r.address}u" for r in regs.registers)
    (tmp_path / "t.c").write_text(
        '#include "registers.h"\n'
        f"int main(void) {{ return ({checks} && DESIRE_STATUS_ERR_WRITE == 8u) ? 0 : 1; }}\n"
    )
    subprocess.run([cc, "-Wall", "-Werror", "-o", tmp_path / "t", tmp_path / "t.c"], check=True)
    assert subprocess.run([tmp_path / "t"]).returncode == 0
