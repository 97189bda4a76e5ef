#!/bin/bash
# The full OLLIE bench (Hopper + HalfCheetah, 3 seeds, 100k online steps per run) in one call on
# a machine with many CPU cores and no network; MuJoCo steps on the CPU, one process per job,
# longest job first (OLLIE's offline jobs lead, each feeding one job per online variant).
# usage: bash ollie/experiments/device_bench.sh WHEELS_DIR OUT_DIR TIME_LIMIT_S [WORKERS] [bench args]
#   e.g. bash ollie/experiments/device_bench.sh WHEELS_DIR $OUT 590 16     # the whole bench
# WHEELS_DIR holds the gymnasium/mujoco wheels (pip download --no-deps). The bench gets the time
# limit less the install and 25 s for the summary; if it is cut short, the (environment, seed)s
# it finished with every arm are summarised (--from-rows on its rows.json).
set -u
W=$1; OUT=$2; T=$3; WORKERS=${4:-16}
shift 4 || shift $#
START=$(date +%s)
python3 -m pip install -q --no-deps --no-index --no-compile --target /tmp/site \
  --find-links "$W" gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
export PAPERBENCH_CACHE=/tmp/paperbench-cache PROGRESS=0
python3 -c "import sys, torch, gymnasium, mujoco, numpy; print('python', sys.version.split()[0], \
'torch', torch.__version__, 'numpy', numpy.__version__, 'gymnasium', gymnasium.__version__, \
'mujoco', mujoco.__version__)"
echo "cpus: $(nproc)"; lscpu | grep -E 'Model name' | head -1
LEFT=$((T - $(date +%s) + START - 25))
timeout "$LEFT" python3 -m ollie.bench --workers "$WORKERS" --out "$OUT/bench" "$@" 2>&1 \
  | grep -v -E "settotalmass|shared.il.generate" | tee "$OUT/bench.log"
if [ ! -f "$OUT/bench/bench.json" ] && [ -f "$OUT/bench/rows.json" ]; then
  python3 -m ollie.bench --from-rows "$OUT/bench/rows.json" --out "$OUT/bench" "$@" 2>&1 \
    | tail -12 | tee -a "$OUT/bench.log"
fi
echo "wall: $(( $(date +%s) - START )) s"
