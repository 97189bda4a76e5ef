"""ripple: on-device LLM inference from flash (Ripple / Neuralink, Wang et al., arXiv 2410.19274,
ASPLOS'25), measured on I/O.

Offline, neurons (row-column bundles of a ReLU FFN) are placed in flash along a short Hamiltonian
path of co-activation (`placement.GreedyEdgePlacement`, `layout.write_layout`). Online, activated
neurons become contiguous runs, merged by access collapsing (`collapse.AccessCollapser`) and
cached by S3-FIFO with linking-aligned admission (`neuron_cache`). `engine` replays llama.cpp-style,
LLM-in-a-flash (`baselines`) and Ripple loading on the same masks, against a modelled UFS 4.0
device and real O_DIRECT reads (`storage`). Recipes: `python -m ripple.train|eval|bench`.
See README.md.

Example (what a notebook user types; runs in well under a second):

>>> import numpy as np
>>> from ripple import GreedyEdgePlacement, UFSModel, runs_of, slots_of
>>> rng = np.random.default_rng(0)
>>> masks = rng.random((64, 32)) < 0.2                  # (tokens, neurons) activations
>>> masks[:, [3, 17, 25]] = rng.random((64, 1)) < 0.5   # three neurons that fire together
>>> order = GreedyEdgePlacement(top_k=8).fit(masks)     # neuron order in flash
>>> starts, lengths = runs_of(np.sort(slots_of(order)[[3, 17, 25]]))
>>> lengths.tolist()                                    # placed side by side: one read
[3]
>>> bundle = 2 * 1024 * 2                    # bytes of one neuron (up + down row, d1024, fp16)
>>> ufs = UFSModel()                         # small reads are IOPS-bound: one read, not three
>>> round(ufs.latency(np.full(3, bundle)) / ufs.latency(lengths * bundle), 1)
3.0
"""

from ripple.collapse import AccessCollapser, collapse_runs, runs_of
from ripple.engine import ArmSpec, FlashFFN, replay
from ripple.layout import FlashLayout, write_layout
from ripple.neuron_cache import S3FIFO, linking_admission
from ripple.placement import GreedyEdgePlacement, slots_of
from ripple.storage import UFSModel

__all__ = ["GreedyEdgePlacement", "slots_of", "AccessCollapser", "collapse_runs", "runs_of",
           "S3FIFO", "linking_admission", "FlashLayout", "write_layout", "ArmSpec", "FlashFFN",
           "replay", "UFSModel"]
