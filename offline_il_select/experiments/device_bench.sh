#!/bin/bash
# The full ILID bench (100k policy steps, 10k per discriminator) on a GPU machine without network,
# one time-limited call per pair of settings, through `bench --ensemble`: the host's CPU cores roll
# out the datasets (the 1000 source episodes in slices, one per worker); every arm is prepared in
# the main process, the discriminators of all ILID and ISW-BC runs trained in lockstep on the GPU;
# then all arms, DWBC included (its discriminators batched beside the policies), train in
# lockstep as one batched network on the GPU while the CPU cores run the evaluation rollouts.
# usage: bash offline_il_select/experiments/device_bench.sh WHEELS_DIR OUT_DIR TIME_LIMIT_S SETTINGS SEEDS [ARMS] [WORKERS] [STEPS]
#   WHEELS_DIR: the gymnasium/mujoco wheels (pip download --no-deps); '-' when they are installed
#   SETTINGS: comma-separated bench settings (see `python -m offline_il_select.bench --help`)
#   SEEDS: comma-separated training seeds (the full bench: 0,1,2)
#   ARMS: default ilid,bc_expert,dwbc,iswbc,ilid_no_beta
#   WORKERS: worker processes (default 15: one core stays with the GPU loop)
#   STEPS: policy steps (default 100000)
#   DEVICE (environment): default cuda; DEVICE=cpu checks the same call on a machine without GPU
#   PYTHON (environment): the interpreter, default python3
# Plan and projected times per call: results/DEVICE_RUNS.md and results/offline_il_select/NOTES.md.
# Whatever the time limit cuts, OUT_DIR keeps: bench_full.log (every log line, unfiltered),
# part/stages.log (stage timestamps), part/rows.json (the in-family rows as soon as the loop is
# done, completed with the out-of-family scores) and part/curves_partial.json (every member's
# curve after each evaluation round). Parts are summarised together here:
#   python -m offline_il_select.bench --from-rows P1/rows.json,P2/rows.json --out DIR
set -u
W=$1; OUT=$2; T=$3; SETTINGS=$4; SEEDS=$5
ARMS=${6:-ilid,bc_expert,dwbc,iswbc,ilid_no_beta}; WORKERS=${7:-15}; STEPS=${8:-100000}
DEVICE=${DEVICE:-cuda}
START=$(date +%s)
mkdir -p "$OUT"
if [ "$W" != "-" ]; then
  python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site \
    --find-links "$W" gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 PROGRESS=0
PY=${PYTHON:-python3}
$PY -c "import sys, torch, gymnasium, mujoco, numpy; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, \
'mujoco', mujoco.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() \
else 'no GPU')" | tee "$OUT/versions.txt"
echo "setup: $(( $(date +%s) - START )) s" | tee -a "$OUT/versions.txt"
LEFT=$((T - $(date +%s) + START - 10))
# timeout signals the bench's whole process group (its workers too); -k: then SIGKILL
timeout -k 5 "$LEFT" $PY -m offline_il_select.bench --ensemble --device "$DEVICE" \
  --workers "$WORKERS" --steps "$STEPS" --settings "$SETTINGS" --seed-list "$SEEDS" \
  --arms "$ARMS" --out "$OUT/part" 2>&1 | tee "$OUT/bench_full.log" | grep -v -E "settotalmass|^$"
echo "total: $(( $(date +%s) - START )) s"
