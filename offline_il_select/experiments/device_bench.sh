#!/bin/bash
# The full ILID bench (100k policy steps, 10k per discriminator) on a GPU machine without network,
# one time-limited call at a time, through `bench --ensemble`: the arms but DWBC are prepared on
# the host's CPU cores and then train in lockstep as one batched network on the GPU while the CPU
# cores run the evaluation rollouts; DWBC runs as checkpointed GPU jobs (its own calls).
# usage: bash offline_il_select/experiments/device_bench.sh WHEELS_DIR OUT_DIR TIME_LIMIT_S SETTINGS SEEDS [ARMS] [WORKERS] [STEPS] [RUN_DIR]
#   SETTINGS: comma-separated bench settings (see `python -m offline_il_select.bench --help`)
#   SEEDS: comma-separated training seeds (the full bench: 0,1,2)
#   ARMS: default ilid,bc_expert,iswbc,ilid_no_beta (the ensemble); dwbc alone for the DWBC calls
#   WORKERS: worker processes (default 15: one core stays with the GPU loop)
#   RUN_DIR: the bench's --out (default OUT_DIR/part). DWBC jobs checkpoint every evaluation under
#     RUN_DIR/jobs; a later call with the same RUN_DIR (an ignored path of the repo, carried back)
#     resumes them. A RUN_DIR outside OUT_DIR is copied to OUT_DIR/part at the end.
# Plan and projected times per call: results/DEVICE_RUNS.md and results/offline_il_select/NOTES.md.
# WHEELS_DIR holds the gymnasium/mujoco wheels (pip download --no-deps). Whatever the time limit
# cuts, OUT_DIR keeps: bench_full.log (every log line, unfiltered), RUN_DIR/stages.log (stage
# timestamps), rows.json (rewritten as each ensemble or job finishes) and curves_partial.json (the
# ensemble's curves after each evaluation round). Parts are summarised together here:
#   python -m offline_il_select.bench --from-rows P1/rows.json,P2/rows.json,... --out DIR
set -u
W=$1; OUT=$2; T=$3; SETTINGS=$4; SEEDS=$5
ARMS=${6:-ilid,bc_expert,iswbc,ilid_no_beta}; WORKERS=${7:-15}; STEPS=${8:-100000}
RUN=${9:-$OUT/part}
START=$(date +%s)
python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site \
  --find-links "$W" gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1 PROGRESS=0
python3 -c "import sys, torch, gymnasium, mujoco, numpy; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, \
'mujoco', mujoco.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/versions.txt"
echo "setup: $(( $(date +%s) - START )) s" | tee -a "$OUT/versions.txt"
LEFT=$((T - $(date +%s) + START - 20))
# timeout signals the bench's whole process group (its workers too); -k: then SIGKILL
timeout -k 5 "$LEFT" python3 -m offline_il_select.bench --ensemble --device cuda \
  --workers "$WORKERS" --steps "$STEPS" --settings "$SETTINGS" --seed-list "$SEEDS" \
  --arms "$ARMS" --out "$RUN" 2>&1 | tee "$OUT/bench_full.log" | grep -v -E "settotalmass|^$"
if [ "$RUN" != "$OUT/part" ] && [ -d "$RUN" ]; then
  mkdir -p "$OUT/part" && cp -r "$RUN"/. "$OUT/part/"
fi
echo "total: $(( $(date +%s) - START )) s"
