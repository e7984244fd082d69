#!/usr/bin/env bash
# One entry point that does all the set-up on a fresh machine, then runs a job.
#   ./bootstrap.sh demo   -> virtual env + package, then the main job on the embedded store
#   ./bootstrap.sh test   -> virtual env + package, then the default test suite
#   ./bootstrap.sh slow   -> the slow tests (real DFT with CP2K, long searches)
#   ./bootstrap.sh docs   -> the documentation (mkdocs build --strict into ./site)
#   ./bootstrap.sh setup  -> only the set-up
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV=${PES_VENV:-$ROOT/.venv}

find_python() {
  for p in python3.11 python3.12 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$p"; return 0
    fi
  done
  echo "error: Python >= 3.11 is needed (python3.11 not found on PATH)" >&2
  return 1
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating virtual environment $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  local py="$VENV/bin/python"
  local stamp="$VENV/.pes-install-stamp"
  local want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c 'import pes_core, workflows' 2>/dev/null; then
    return 0
  fi
  echo "== installing torch 2.13.0 (CPU) first, then the package"
  "$py" -m pip install -q --upgrade pip
  # torch first and exactly this version: a looser spec pulls GBs of CUDA wheels
  "$py" -m pip install -q "torch==2.13.0"
  "$py" -m pip install -q -e ".[test,docs]"
  echo "$want" > "$stamp"
}

case "${1:-}" in
  setup) setup ;;
  demo)
    setup
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    exec "$VENV/bin/python" -m workflows.cli.demo "${@:2}"
    ;;
  test)
    setup
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MPLBACKEND=Agg
    exec "$VENV/bin/python" -m pytest -q "${@:2}"
    ;;
  slow)
    setup
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MPLBACKEND=Agg
    exec "$VENV/bin/python" -m pytest -q -m slow "${@:2}"
    ;;
  docs)
    setup
    # warnings (broken links and anchors, bad docstrings, pages missing from nav) are errors
    export NO_MKDOCS_2_WARNING=1
    exec "$VENV/bin/python" -m mkdocs build --strict --site-dir "$ROOT/site" "${@:2}"
    ;;
  *)
    echo "usage: ./bootstrap.sh {demo|test|slow|docs|setup}" >&2
    exit 2
    ;;
esac
