#!/bin/bash
# The full ILID bench (100k policy steps, 10k per discriminator) on a GPU machine without network,
# through `bench --ensemble`: every arm but DWBC trains in lockstep as one batched network on the
# GPU; preparation, DWBC and the evaluation rollouts run on the host's CPU cores.
# usage: bash offline_il_select/experiments/device_bench.sh WHEELS_DIR OUT_DIR TIME_LIMIT_S SETTINGS SEEDS [ARMS] [WORKERS] [STEPS]
#   SETTINGS: comma-separated bench settings (see `python -m offline_il_select.bench --help`)
#   SEEDS: comma-separated training seeds (the full bench: 0,1,2)
#   ARMS: default ilid,bc_expert,dwbc,iswbc,ilid_no_beta
# WHEELS_DIR holds the gymnasium/mujoco wheels (pip download --no-deps). The bench writes rows.json
# after each job and each ensemble; a run cut short by TIME_LIMIT_S keeps them, and parts are
# summarised together here: python -m offline_il_select.bench --from-rows P1/rows.json,... --out DIR
set -u
W=$1; OUT=$2; T=$3; SETTINGS=$4; SEEDS=$5
ARMS=${6:-ilid,bc_expert,dwbc,iswbc,ilid_no_beta}; WORKERS=${7:-16}; STEPS=${8:-100000}
START=$(date +%s)
python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site \
  --find-links "$W" gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 PROGRESS=0
python3 -c "import sys, torch, gymnasium, mujoco, numpy; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, \
'mujoco', mujoco.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/versions.txt"
LEFT=$((T - $(date +%s) + START - 15))
timeout "$LEFT" python3 -m offline_il_select.bench --ensemble --device cuda --workers "$WORKERS" \
  --steps "$STEPS" --settings "$SETTINGS" --seed-list "$SEEDS" --arms "$ARMS" --out "$OUT/part" \
  2>&1 | grep -v -E "settotalmass|prepared in|^$" | tee "$OUT/bench.log"
echo "total: $(( $(date +%s) - START )) s"
