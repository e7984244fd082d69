#!/usr/bin/env bash
# Set up the `cp2k` oracle: Debian's cp2k + cp2k-data, and pymatgen's CP2K data directory.
#
# Idempotent: installs the packages only when cp2k is missing, builds the data
# directory only when it is missing or empty.  Prints the environment variables
# to export (also written to $PES_CP2K_ENV_FILE when set).
#
#   scripts/setup_cp2k.sh                 # data dir: ${PES_CP2K_DATA_DIR:-$HOME/.cache/pes/cp2k-data}
#   eval "$(scripts/setup_cp2k.sh --env)" # only the export lines on stdout
#
# Needs root (or sudo) for apt-get; `pmg` from the project's virtual environment.
set -euo pipefail

ENV_ONLY=0
[[ "${1:-}" == "--env" ]] && ENV_ONLY=1
log() { if [[ $ENV_ONLY == 1 ]]; then echo "$*" >&2; else echo "$*"; fi; }

DATA_DIR="${PES_CP2K_DATA_DIR:-${PMG_CP2K_DATA_DIR:-$HOME/.cache/pes/cp2k-data}}"
CP2K_SHARE="${CP2K_SHARE:-/usr/share/cp2k}"

# 1. the program and its basis sets / pseudopotentials
if ! command -v cp2k.psmp >/dev/null 2>&1 && ! command -v cp2k >/dev/null 2>&1 \
   || [[ ! -f "$CP2K_SHARE/GTH_POTENTIALS" ]]; then
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
  log "installing cp2k and cp2k-data with apt-get"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cp2k cp2k-data >&2
else
  log "cp2k found: $(command -v cp2k.psmp || command -v cp2k)"
fi

# 2. pymatgen's per-element YAML data built from cp2k-data (about 30 s)
PMG="${PMG:-pmg}"
if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/pmg" ]]; then PMG="$VIRTUAL_ENV/bin/pmg"; fi
if [[ ! -d "$DATA_DIR" || ! -e "$DATA_DIR/C" ]]; then
  if ! command -v "$PMG" >/dev/null 2>&1; then
    echo "error: 'pmg' (pymatgen's CLI) not found; activate the project's virtual environment" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$DATA_DIR")"
  rm -rf "$DATA_DIR"   # pmg refuses an existing destination
  log "building pymatgen CP2K data in $DATA_DIR"
  "$PMG" config --cp2k "$CP2K_SHARE" "$DATA_DIR" >&2
else
  log "pymatgen CP2K data present in $DATA_DIR"
fi

CMD="$(command -v cp2k.psmp || command -v cp2k)"
EXPORTS="export PMG_CP2K_DATA_DIR=$DATA_DIR
export PMG_DEFAULT_CP2K_FUNCTIONAL=PBE
export OMP_NUM_THREADS=1
export ATOMATE2_CP2K_CMD=$(basename "$CMD")"
if [[ -n "${PES_CP2K_ENV_FILE:-}" ]]; then echo "$EXPORTS" > "$PES_CP2K_ENV_FILE"; fi
if [[ $ENV_ONLY == 1 ]]; then
  echo "$EXPORTS"
else
  echo
  echo "cp2k oracle ready. Export these (or add them to the worker's environment):"
  echo "$EXPORTS"
fi
