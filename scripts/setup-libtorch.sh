#!/usr/bin/env bash
# Ensure a CPU libtorch 2.13.0 (what tch 0.26 needs) exists and print its path.
#
# - If $LIBTORCH is set, it is respected as is (checked, never modified).
# - Otherwise a CPU libtorch is assembled once from PyPI packages into
#   ${GATESCOPE_CACHE:-$HOME/.cache/gatescope}/libtorch-2.13.0-cpu and reused afterwards.
#   (torch==2.13.0's wheel carries libtorch; its CPU library also needs libcudart/libcupti,
#   which come from cuda-toolkit. The CUDA libraries of torch are left out on purpose: torch-sys
#   links torch_cuda whenever libtorch_cuda.so is present.)
# Idempotent: a finished install is marked with a stamp file.
set -euo pipefail

log() { echo "[setup-libtorch] $*" >&2; }

if [[ -n "${LIBTORCH:-}" ]]; then
  if [[ ! -d "$LIBTORCH/lib" || ! -d "$LIBTORCH/include" ]]; then
    log "LIBTORCH=$LIBTORCH has no lib/ and include/: not a libtorch folder"
    exit 1
  fi
  echo "$LIBTORCH"
  exit 0
fi

TORCH_VERSION=2.13.0
cache="${GATESCOPE_CACHE:-$HOME/.cache/gatescope}"
dest="$cache/libtorch-$TORCH_VERSION-cpu"
stamp="$dest/.complete"

if [[ -f "$stamp" ]]; then
  echo "$dest"
  exit 0
fi

log "assembling CPU libtorch $TORCH_VERSION into $dest (once; ~600 MB download)"
mkdir -p "$cache"
work="$(mktemp -d "$cache/tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT

pip_dl() {
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$work/wheels" "$@"
}
pip_dl "torch==$TORCH_VERSION"
# libcudart.so.13 and libcupti.so.13 (what cuda-toolkit[cudart,cupti]==13.0.3 pins)
pip_dl "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"

stage="$work/libtorch"
mkdir -p "$stage/lib"
python3 - "$work/wheels" "$stage" <<'PY'
import sys, zipfile, glob, os, shutil
wheels, stage = sys.argv[1], sys.argv[2]
keep_libs = {"libtorch_cpu.so", "libc10.so", "libtorch.so", "libgomp.so.1", "libshm.so",
             "libtorch_global_deps.so"}
cuda_libs = ("libcudart.so.13", "libcupti.so.13")
found = set()
for whl in glob.glob(os.path.join(wheels, "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            base = os.path.basename(name)
            if name.startswith("torch/include/") and not name.endswith("/"):
                out = os.path.join(stage, "include", name[len("torch/include/"):])
            elif name.startswith("torch/share/cmake/") and not name.endswith("/"):
                out = os.path.join(stage, "share", "cmake", name[len("torch/share/cmake/"):])
            elif name.startswith("torch/lib/") and base in keep_libs:
                out = os.path.join(stage, "lib", base)
            elif base in cuda_libs and "/lib/" in name:
                out = os.path.join(stage, "lib", base)
            else:
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if out.endswith(".so") or ".so." in out:
                found.add(base)
need = {"libtorch_cpu.so", "libc10.so", "libtorch.so", *cuda_libs}
missing = need - found
if missing:
    sys.exit(f"libtorch assembly is missing {sorted(missing)}")
PY
echo "$TORCH_VERSION" > "$stage/build-version"
rm -rf "$dest"
mv "$stage" "$dest"
touch "$stamp"
log "done: $dest"
echo "$dest"
