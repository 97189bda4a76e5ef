#!/bin/bash
# Train the Hopper and HalfCheetah SAC experts side by side on a machine with a GPU.
# usage: bash shared/il/device_train.sh WHEELS_DIR OUT_DIR TIME_LIMIT_S ["hopper halfcheetah"]
# WHEELS_DIR holds gymnasium/mujoco wheels for a machine without network (pip download --no-deps).
# Snapshots and histories are copied into OUT_DIR every 20 s, so they survive a hard kill.
set -u
W=$1; OUT=$2; T=$3; ENVS=${4:-hopper halfcheetah}
python3 -m pip install -q --no-deps --no-index --find-links "$W" \
  gymnasium mujoco mujoco-core glfw farama-notifications 2>&1 | tail -3
python3 -c "import torch, gymnasium, mujoco; print('torch', torch.__version__, 'gymnasium', \
gymnasium.__version__, 'mujoco', mujoco.__version__, torch.cuda.get_device_name(0))"
nproc
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
pids=()
for env in $ENVS; do
  python3 -m shared.il.train_expert --config "shared/il/configs/$env.yaml" --device cuda \
    --set time_limit_s="$T" --out "/tmp/sac_$env" > "$OUT/$env.log" 2>&1 &
  pids+=($!)
done
copy() {
  for env in $ENVS; do
    for f in snapshots.pt history.json; do
      [ -f "/tmp/sac_$env/$f" ] && cp "/tmp/sac_$env/$f" "$OUT/${env}_$f.tmp" \
        && mv "$OUT/${env}_$f.tmp" "$OUT/${env}_$f"
    done
  done
}
alive() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while alive; do sleep 20; copy; done
wait
copy
for f in "$OUT"/*.log; do tail -n 3 "$f"; done
