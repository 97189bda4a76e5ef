"""ripple: on-device LLM inference from flash (Ripple / Neuralink, Wang et al., arXiv 2410.19274,
ASPLOS'25), measured on I/O.

Offline, neurons (row-column bundles of a ReLU FFN) are placed in flash along a short Hamiltonian
path of co-activation (`placement.GreedyEdgePlacement`, `layout.write_layout`). Online, activated
neurons become contiguous runs, merged by access collapsing (`collapse.AccessCollapser`) and
cached by S3-FIFO with linking-aligned admission (`cache`). `engine` replays llama.cpp-style,
LLM-in-a-flash (`baselines`) and Ripple loading on the same masks, against a modelled UFS 4.0
device and real O_DIRECT reads (`storage`). Recipes: `python -m ripple.train|eval|bench`.
See README.md.
"""
