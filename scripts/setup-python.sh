#!/usr/bin/env bash
# Ensure the Python side's venv exists (torch==2.13.0, numpy, safetensors, pytest) and print its
# python. Cached once under ${GATESCOPE_CACHE:-$HOME/.cache/gatescope}/venv-torch-2.13.0.
# torch 2.13.0 from PyPI is a CUDA build: with its NVIDIA wheels the venv is about 4.8 GB and
# took 59 s to install here. It runs on CPU without a GPU. (Without those wheels `import torch`
# fails: torch/_C needs libtorch_cuda.so, which needs cuDNN, cuBLAS, NCCL, …)
# Then installs ./python into it (pip install ./python), so every run checks that it installs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
log() { echo "[setup-python] $*" >&2; }
cache="${GATESCOPE_CACHE:-$HOME/.cache/gatescope}"
venv="$cache/venv-torch-2.13.0"
if [[ ! -f "$venv/.complete" ]]; then
  log "creating $venv (once; torch 2.13.0 with its CUDA wheels, about 4.8 GB)"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet "torch==2.13.0" "numpy>=1.22" "safetensors>=0.4" "pytest>=7" "setuptools>=77" >&2
  touch "$venv/.complete"
fi
# from a copy: setuptools writes build/ and *.egg-info beside the sources it builds
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
cp -r "$root/python/pyproject.toml" "$root/python/README.md" "$root/python/gatescope" "$src/"
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation "$src" >&2
echo "$venv/bin/python"
