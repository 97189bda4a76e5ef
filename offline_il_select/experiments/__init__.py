"""Experiments behind offline_il_select's findings (results/offline_il_select/NOTES.md), apart
from the library:

- `python -m offline_il_select.experiments.diagnose`: where ILID loses (preparation statistics,
  loss variants, D4RL-style random data);
- `python -m offline_il_select.experiments.steptime`: one policy step of each method, timed;
- `experiments/device_bench.sh`: the full bench on a many-core machine without network.
"""
