"""cocotb verification of the RTL against golden/: drivers, block testbenches, runner.

``python -m sim`` runs the regression (``SIM=icarus|verilator|all``); see
:mod:`sim.runner`.
"""
