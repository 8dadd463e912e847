"""Icarus speed: one clocked ``always`` block per module instead of one per register.

yosys' ``write_verilog`` prints every flip-flop as its own ``always @(posedge clk)``
block. Icarus runs each block as a thread that wakes on every clock edge, so the
784-32-10 top wakes over a thousand threads per cycle, most of them to copy one value
(docs/verification.md, section 8: Icarus is bound by ``vvp`` itself). Merging the
single-assignment blocks of a module into one block is the same Verilog (each is a
non-blocking assignment on the same edge; their order cannot matter) and wakes one
thread per module.
"""

from __future__ import annotations

import re

__all__ = ["merge_clocked"]

#: A clocked block whose body is one assignment line (an lvalue, not a keyword such as
#: ``if``), not followed by an ``else``.
_BLOCK = re.compile(
    r"^(\s*)always @\((posedge \w+)\)\n[ \t]+(?=\S)"
    r"((?!(?:if|else|case|for|begin)\b)[^\n]*?<=[^\n]*;)\n"
    r"(?!\s*else\b)",
    re.M,
)


def merge_clocked(verilog: str) -> str:
    """``verilog`` with each module's single-assignment clocked blocks merged per clock."""
    out = []
    for chunk in re.split(r"(?<=\bendmodule\n)", verilog):
        groups: dict[str, list[str]] = {}

        def take(m: re.Match[str], groups: dict[str, list[str]] = groups) -> str:
            groups.setdefault(m.group(2), []).append(m.group(3))
            return ""

        body = _BLOCK.sub(take, chunk)
        if groups:
            merged = "".join(
                f"  always @({edge}) begin\n" + "".join(f"    {s}\n" for s in stmts) + "  end\n"
                for edge, stmts in groups.items()
            )
            head, sep, tail = body.rpartition("endmodule")
            body = head + merged + sep + tail
        out.append(body)
    return "".join(out)
