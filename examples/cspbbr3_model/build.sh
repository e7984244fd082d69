#!/usr/bin/env bash
# Build the CsPbBr3 thermodynamics model from nothing (CHGNet as the oracle), step by step, in PROJECT.
#
#   examples/cspbbr3_model/build.sh PROJECT [STEP]      # STEP: 1-6 (default: every step from 1)
#
# Every step is a spec (or a file an oracle_batch labels) and `pes run`, so a rerun resumes and recomputes
# nothing stored. Wall times on the 2-core sandbox (load 2): step 1 about 35 min, 2 under 1 min, 3 about
# 10 min, 4 about 5 min, 5 about 15 min a round, 6 about 25 min (README.md here has the measured numbers).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="${1:?usage: build.sh PROJECT [STEP]}"
first="${2:-1}"
workers="${PES_WORKERS:-2}"

if [ ! -f "$project/my_launchpad.yaml" ]; then
    pes init "$project"
fi
cd "$project"
step() { [ "$1" -ge "$first" ]; }

if step 1; then  # the 40-atom CHGNet set (about 2,300 configurations) and its linear fit
    pes submit "$here/1_training_set.yaml" --if-new   # already submitted: skipped, the run resumes
    pes run -w "$workers"
fi
if step 2; then  # the relaxed tilt phases
    [ -f phases.extxyz ] || python "$here/phases.py" phases.extxyz
    cp "$here/2_phases.yaml" .
    pes submit 2_phases.yaml --if-new
    pes run -w "$workers"
fi
if step 3; then  # 300 mosaics of 320 atoms
    [ -f mosaics.extxyz ] || pes model mosaics mosaics.extxyz -m cspbbr3-full-fit-linear \
        --training-set cspbbr3-full --count 300
    cp "$here/3_mosaics.yaml" .
    pes submit 3_mosaics.yaml --if-new
    pes run -w "$workers"
fi
if step 4; then  # the fit on all of it
    pes submit "$here/4_fit.yaml" --if-new
    pes run -w "$workers"
fi
if step 5; then  # the large-cell refinement loop
    pes submit "$here/5_loop.yaml" --if-new
    pes run -w "$workers"
fi
if step 6; then  # replica exchange on the loop's model (set model: in 6_exchange.yaml first)
    pes submit "$here/6_exchange.yaml" --if-new
    pes run -w "$workers"
fi
