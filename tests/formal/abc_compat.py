"""ABC for SymbiYosys's ``abc pdr`` engine: Debian 12's ``berkeley-abc`` made to fit it.

Why a wrapper: YoWASP's yosys links ABC into its WebAssembly module and ships no
``yosys-abc`` program, so sby's ABC engines need one from elsewhere, and Debian's
``berkeley-abc`` (a 2022 snapshot) differs from the ABC that sby 0.70 expects in two
details, which this script irons out:

* ``pdr -l`` (an option added later) is refused: it is dropped from the command;
* ``write_cex -a`` ends the witness with ``# DONE`` glued to the last input line: it is
  moved to a line of its own, so that ``yosys-witness`` reads the counterexample and sby
  writes its trace.

sby runs it as ``$ABC -c '<commands>'`` (``tests.formal.runner`` sets ``ABC``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

#: The ABC program this wraps.
ABC = "berkeley-abc"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "-c":
        print(f"usage: abc_compat.py -c '<ABC commands>' (got {argv!r})", file=sys.stderr)
        return 2
    program = shutil.which(ABC)
    if program is None:
        print(f"abc_compat.py: {ABC} is not installed (apt-get install {ABC})", file=sys.stderr)
        return 127
    commands = re.sub(r"\bpdr (-\w+ )*?-l\b", lambda m: m[0][:-3], argv[1])
    rc = subprocess.call([program, "-c", commands])
    for witness in re.findall(r"write_cex -a (\S+?);?(?=\s|$)", commands):
        path = Path(witness)
        if path.is_file():
            path.write_text(re.sub(r"(?<=[01x])# DONE", "\n# DONE", path.read_text()))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
