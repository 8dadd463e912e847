"""sim.icarus_merge: the clocked blocks of a module merged, nothing else changed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rtl.verilog import generate
from sim.icarus_merge import merge_clocked
from sim.runner import CI_CONFIG

TEXT = """module a(clk, x, y);
  always @(posedge clk)
    x <= \\$1 ;
  always @(posedge clk)
    if (en) z <= w;
  always @(posedge clk)
    y <= x;
  assign \\$1 = ~y;
endmodule
module b(clk2, q);
  always @(posedge clk2)
    q <= ~q;
endmodule
"""


def test_merges_single_assignments_per_module_and_clock() -> None:
    merged = merge_clocked(TEXT)
    a, b = merged.split("endmodule\n")[:2]
    assert "  always @(posedge clk) begin\n    x <= \\$1 ;\n    y <= x;\n  end\n" in a
    assert "if (en) z <= w;" in a and a.count("always @(posedge clk)") == 2  # the `if` stays
    assert "  always @(posedge clk2) begin\n    q <= ~q;\n  end\n" in b
    assert "assign \\$1 = ~y;" in a


def _assignments(text: str) -> list[str]:
    return sorted(re.findall(r"^\s+(\S[^\n]*<=[^\n]*;)$", text, re.M))


def test_generated_block_keeps_every_assignment(tmp_path: Path) -> None:
    """On a real block: the same non-blocking assignments, far fewer clocked blocks, and
    the result compiles (where Icarus is installed; the sim regressions run it)."""
    text = generate(CI_CONFIG, "update_unit")
    merged = merge_clocked(text)
    assert _assignments(merged) == _assignments(text)
    before, after = text.count("always @(posedge"), merged.count("always @(posedge")
    assert after < before / 4, (before, after)
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not installed")
    (tmp_path / "m.v").write_text(merged)
    done = subprocess.run(
        ["iverilog", "-g2012", "-o", str(tmp_path / "m.vvp"), str(tmp_path / "m.v")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
