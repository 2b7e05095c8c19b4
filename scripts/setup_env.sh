#!/usr/bin/env bash
# Creates a venv with uv from the pinned lock. Usage: setup_env.sh main|flexiv VENV GPU | setup_env.sh lock
#   main:   .venv (Python 3.11) = exactly requirements/lock.txt + the workspace packages (editable, no deps)
#   flexiv: .venv-flexiv (Python 3.12) = exactly requirements/lock-flexiv.txt + openpi-client/robot-common/robot-flexiv
#   lock:   regenerate both locks with `uv pip compile` from requirements/{main,flexiv}.in (make lock)
# The machine's wheel store (if any) is taken from `pip config` at run time so that no machine path is
# ever committed (and the locks name no index, path or host); on a GPU machine (GPU=1) torch/jax come from PyPI
# with CUDA (torch's Linux wheels on PyPI are CUDA builds; jax gets the locked version's cuda12 plugin).
set -euo pipefail
kind=$1; venv=${2:-}; gpu=${3:-0}
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

WORKSPACE=(-e packages/openpi-client -e packages/robot-common -e packages/robot-piper -e packages/aloha-sim
           -e packages/robot-flexiv -e "packages/openpi-core[jax,torch]")
FLEXIV=(-e packages/openpi-client -e packages/robot-common -e "packages/robot-flexiv[sdk]")
LOCAL=(openpi-core openpi-client robot-common robot-piper aloha-sim robot-flexiv)

compile() {  # compile IN OUT PYTHON PLATFORM: pin every third-party package (versions, not hashes: a wheel store may
             # serve another build of the same version); the workspace packages themselves are not pinned.
  local no_emit=() p
  for p in "${LOCAL[@]}"; do no_emit+=(--no-emit-package "$p"); done
  uv pip compile -q "$1" -o "$2" --python-version "$3" --python-platform "$4" --override requirements/overrides.txt \
    --no-emit-index-url --no-emit-find-links --custom-compile-command "make lock" "${no_emit[@]}"
  echo "[lock] $2: $(grep -c '==' "$2") pinned packages"
}

if [ "$kind" = lock ]; then
  compile requirements/main.in requirements/lock.txt 3.11 x86_64-manylinux_2_28
  compile requirements/flexiv.in requirements/lock-flexiv.txt 3.12 x86_64-manylinux_2_35
elif [ "$kind" = main ]; then
  py=$(find_python 3.11); [ -n "$py" ] || { echo "Python 3.11 not found (install it, e.g. with pyenv or 'uv python install 3.11')"; exit 1; }
  [ -x "$venv/bin/python" ] || uv venv -q --python "$py" "$venv"
  # Exactly the lock (anything else is removed), then the workspace packages on top without resolving again.
  uv pip sync -q --python "$venv/bin/python" requirements/lock.txt
  uv pip install -q --python "$venv/bin/python" --no-deps "${WORKSPACE[@]}"
  if [ "$gpu" = 1 ]; then  # untested here (no GPU): the CUDA plugin of the locked jax version
    jax_version=$(sed -n 's/^jax==//p' requirements/lock.txt)
    uv pip install -q --python "$venv/bin/python" "jax[cuda12]==$jax_version"
  fi
  "$venv/bin/python" scripts/check_lock.py requirements/lock.txt
  "$venv/bin/python" -c "import jax, torch, lerobot, openpi, openpi_client; print('[setup] imports ok')"
elif [ "$kind" = flexiv ]; then
  py=$(find_python 3.12); [ -n "$py" ] || py=$(find_python 3.10)
  if [ -z "$py" ]; then echo "[setup-flexiv] no CPython 3.12/3.10 found: flexivrdk has no 3.11 wheel; install one and rerun"; exit 1; fi
  [ -x "$venv/bin/python" ] || uv venv -q --python "$py" "$venv"
  uv pip sync -q --python "$venv/bin/python" requirements/lock-flexiv.txt
  uv pip install -q --python "$venv/bin/python" --no-deps "${FLEXIV[@]}"
  "$venv/bin/python" scripts/check_lock.py requirements/lock-flexiv.txt
  "$venv/bin/python" -c "import flexivrdk, robot_flexiv; print('[setup-flexiv] flexivrdk', getattr(flexivrdk, '__version__', '?'), 'in', '$venv')"
else
  echo "usage: setup_env.sh main|flexiv VENV [GPU] | setup_env.sh lock" >&2; exit 2
fi
