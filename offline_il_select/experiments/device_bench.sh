#!/bin/bash
# The full ILID bench (4 settings x 3 seeds x 7 arms = 84 runs) on a many-core machine without
# network, at the largest policy budget that fits a time limit.
# usage: bash offline_il_select/experiments/device_bench.sh WHEELS_DIR OUT_DIR TIME_LIMIT_S [WORKERS]
# WHEELS_DIR holds the gymnasium/mujoco wheels (pip download --no-deps). Steps, all timed:
# 1. roll out the datasets (cached) while timing a policy step on the GPU (steptime --device cuda);
# 2. probe: WORKERS single-thread CPU step timings side by side (the bench's load);
# 3. budget N = what fits the time left, from the probe and a cost model: the 7 arms of one
#    (setting, seed) cost COST_ILID_STEPS ILID steps per policy step. 16.3 is what the first run
#    measured on the lent H100 host (16 vCPUs, 16 workers, 12k steps; HalfCheetah-random ms/step:
#    bc_expert 5.6, bc_all 12.8, dwbc 22.7, iswbc 13.8, ILID arms 3.9-4.8, i.e. 17.5 ILID steps;
#    HalfCheetah-medium+random 15.0). The 2-core dev machine's costs (8.2 ILID steps)
#    underestimated it 2x, so that run finished only the HalfCheetah jobs.
#    Plus ~8 s per run of data loading, d over D_b and evaluation;
# 4. the bench with --steps N under `timeout`; if it is cut short, the summary of the rows done.
set -u
W=$1; OUT=$2; T=$3; WORKERS=${4:-16}
START=$(date +%s)
ILID_REF_MS=2.29  # ILID step, one process, 2-core dev machine
COST_ILID_STEPS=16.3
python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site \
  --find-links "$W" gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
python3 -c "import sys, torch, gymnasium, mujoco, numpy; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, \
'mujoco', mujoco.__version__, torch.cuda.get_device_name(0))"
echo "cpus: $(python3 -c 'import os; print(os.cpu_count())')"; lscpu | grep -E 'Model name|Thread|Core|Socket|MHz' | head -5
t=$(date +%s)
python3 -m offline_il_select.bench --data-only --workers 8 2>&1 | grep -v settotalmass &
DATA=$!
python3 -m offline_il_select.experiments.steptime --device cuda --steps 30000 --out "$OUT/gpu" 2>&1 | tail -1
wait $DATA
echo "datasets + GPU step timing: $(( $(date +%s) - t )) s"
for i in $(seq "$WORKERS"); do
  python3 -m offline_il_select.experiments.steptime --quick --steps 30000 --out "/tmp/probe$i" \
    > /dev/null 2>&1 &
done
wait
N=$(python3 - "$WORKERS" "$START" "$T" "$ILID_REF_MS" "$COST_ILID_STEPS" <<'EOF'
import json, statistics, sys, time
workers, start, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ref, cost = float(sys.argv[4]), float(sys.argv[5])
ms = [json.load(open(f"/tmp/probe{i}/steptime.json"))["ilid_step_ms"] for i in range(1, workers + 1)]
ilid_ms = statistics.median(ms)  # one ILID step on this machine under the bench's load
avail = limit - (time.time() - start) - 60  # summary + margin
n = (0.9 * avail * workers - 84 * 8) / (12 * cost * ilid_ms * 1e-3)
n = int(max(5000, min(50000, n)) // 1000 * 1000)
print(f"probe: ILID step {ilid_ms:.2f} ms loaded ({ilid_ms / ref:.2f}x the dev machine's), "
      f"{avail:.0f} s left -> {n} policy steps", file=sys.stderr)
print(n)
EOF
)
LEFT=$(( START + T - $(date +%s) - 40 ))
echo "bench: --steps $N, timeout $LEFT s"
timeout --kill-after=5 "$LEFT" python3 -m offline_il_select.bench --workers "$WORKERS" \
  --steps "$N" --out "$OUT/full" 2>&1 | grep -v settotalmass
if [ ! -f "$OUT/full/bench.json" ] && [ -f "$OUT/full/rows.json" ]; then
  echo "bench cut short: summarising the rows done"
  python3 -m offline_il_select.bench --from-rows "$OUT/full/rows.json" --steps "$N" \
    --out "$OUT/full" 2>&1 | grep -v settotalmass
fi
echo "total: $(( $(date +%s) - START )) s"
