#!/bin/bash
# One part of the full ILID bench (100k policy steps, 10k per discriminator) on a GPU machine
# without network: networks train on the GPU, evaluation rollouts step MuJoCo on its CPU cores.
# usage: bash offline_il_select/experiments/device_bench.sh WHEELS_DIR OUT_DIR SETTINGS SEEDS [WORKERS] [STEPS]
#   SETTINGS: comma-separated bench settings (see `python -m offline_il_select.bench --help`)
#   SEEDS: comma-separated training seeds (the full bench: 0,1,2)
# WHEELS_DIR holds the gymnasium/mujoco wheels (pip download --no-deps). A device command is
# limited in time, so the full bench (8 settings x 3 seeds x 8 arms) runs as parts, one
# (settings, seeds) subset per command, and the parts' rows are summarised together:
#   python -m offline_il_select.bench --from-rows P1/rows.json,P2/rows.json,... --out DIR
set -u
W=$1; OUT=$2; SETTINGS=$3; SEEDS=$4; WORKERS=${5:-16}; STEPS=${6:-100000}
START=$(date +%s)
python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site \
  --find-links "$W" gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
python3 -c "import sys, torch, gymnasium, mujoco, numpy; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, \
'mujoco', mujoco.__version__, torch.cuda.get_device_name(0))"
echo "cpus: $(python3 -c 'import os; print(os.cpu_count())')"
python3 -m offline_il_select.bench --device cuda --workers "$WORKERS" --steps "$STEPS" \
  --settings "$SETTINGS" --seed-list "$SEEDS" --out "$OUT/part" 2>&1 | grep -v settotalmass
echo "total: $(( $(date +%s) - START )) s"
