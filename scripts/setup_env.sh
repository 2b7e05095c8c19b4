#!/usr/bin/env bash
# Creates a venv with uv. Usage: setup_env.sh main|flexiv VENV GPU
# The machine's wheel store (if any) is taken from `pip config` at run time so that no machine path is
# ever committed; on a GPU machine (GPU=1) torch/jax come from PyPI with CUDA.
set -euo pipefail
kind=$1; venv=$2; gpu=${3:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "$gpu" != 1 ]; then
  fl=$(python3 -m pip config get global.find-links 2>/dev/null || true)
  xi=$(python3 -m pip config get global.extra-index-url 2>/dev/null || true)
  [ -n "$fl" ] && export UV_FIND_LINKS="${UV_FIND_LINKS:-$fl}"
  [ -n "$xi" ] && export UV_EXTRA_INDEX_URL="${UV_EXTRA_INDEX_URL:-$xi}"
fi
export UV_INDEX_STRATEGY=unsafe-best-match
export GIT_LFS_SKIP_SMUDGE=1

find_python() {  # find_python 3.12 -> path of an interpreter of that minor version, or nothing
  local v=$1 p
  if command -v pyenv >/dev/null 2>&1; then
    for p in $(pyenv root)/versions/$v*/bin/python$v; do [ -x "$p" ] && "$p" -c 'import sys' 2>/dev/null && { echo "$p"; return; }; done
  fi
  p=$(command -v "python$v" 2>/dev/null || true)
  [ -n "$p" ] && "$p" -c 'import sys' 2>/dev/null && { echo "$p"; return; }
  uv python find "$v" 2>/dev/null || true
}

if [ "$kind" = main ]; then
  py=$(find_python 3.11); [ -n "$py" ] || { echo "Python 3.11 not found (install it, e.g. with pyenv or 'uv python install 3.11')"; exit 1; }
  [ -x "$venv/bin/python" ] || uv venv -q --python "$py" "$venv"
  extra=()
  [ "$gpu" = 1 ] && extra+=("jax[cuda12]")
  uv pip install -q --python "$venv/bin/python" --override requirements/overrides.txt \
    -e packages/openpi-client -e packages/robot-common -e packages/robot-piper -e packages/aloha-sim \
    -e packages/robot-flexiv -e packages/openpi-core -r requirements/dev.txt "${extra[@]}"
  "$venv/bin/python" -c "import jax, torch, lerobot, openpi, openpi_client; print('[setup] jax', jax.__version__, '| torch', torch.__version__, '| lerobot ok')"
elif [ "$kind" = flexiv ]; then
  py=$(find_python 3.12); [ -n "$py" ] || py=$(find_python 3.10)
  if [ -z "$py" ]; then echo "[setup-flexiv] no CPython 3.12/3.10 found: flexivrdk has no 3.11 wheel; install one and rerun"; exit 1; fi
  [ -x "$venv/bin/python" ] || uv venv -q --python "$py" "$venv"
  uv pip install -q --python "$venv/bin/python" -e packages/openpi-client -e packages/robot-common -e "packages/robot-flexiv[sdk]" pytest
  "$venv/bin/python" -c "import flexivrdk, robot_flexiv; print('[setup-flexiv] flexivrdk', getattr(flexivrdk, '__version__', '?'), 'in', '$venv')"
fi
