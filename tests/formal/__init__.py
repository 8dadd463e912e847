"""Formal properties of the RTL, proved with SymbiYosys (docs/formal.md).

One harness per block (``scanner``, ``encoder``, ``host_bus``, ``neuron_core``,
``draws``, ``accelerator``) wraps the unmodified component and checks its ports;
:mod:`tests.formal.proofs` lists the proofs and the mutants that must break them,
:mod:`tests.formal.runner` runs sby. ``python -m tests.formal`` (``make formal``) runs
everything; tests/test_formal.py the small configs in ``make test``.
"""
