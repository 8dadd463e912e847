"""Mutated copies of RTL classes, so that a test can show a property is able to fail.

A mutant is made from the module's source text with one fragment replaced, executed
as a new module: the files under rtl/ are never touched, and the unmutated class
stays what every other test imports.
"""

from __future__ import annotations

import inspect
import sys
from types import ModuleType

__all__ = ["mutant"]


def mutant(module: ModuleType, name: str, old: str, new: str) -> type:
    """Class ``name`` of ``module`` with the one occurrence of ``old`` replaced by ``new``.

    Raises AssertionError if ``old`` does not occur exactly once (the RTL changed: the
    mutation must be chosen again, not silently skipped).
    """
    source = inspect.getsource(module)
    count = source.count(old)
    if count != 1:
        raise AssertionError(f"{module.__name__}: {old!r} occurs {count} times, not once")
    # a real module in sys.modules: dataclasses resolve their annotations through it
    copy = ModuleType(f"{module.__name__}_mutant")
    sys.modules[copy.__name__] = copy
    code = compile(source.replace(old, new), f"<mutant of {module.__file__}>", "exec")
    exec(code, copy.__dict__)
    cls = copy.__dict__[name]
    assert isinstance(cls, type)
    return cls
