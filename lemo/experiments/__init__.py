"""Experiments behind lemo's findings (results/lemo/NOTES.md), apart from the library:

- `probes`: token-selection probes that are not the paper's rule (recent / oracle / random);
- `python -m lemo.experiments.diag_passkey`: why LeMo loses passkey retrieval (one arm, dense
  and sparse evaluation, answer-NLL curve);
- `python -m lemo.experiments.passkey_sweep`: grids over the bench's accuracy part;
- `python -m lemo.experiments.saved_grid`: saved bytes over keep ratio x MLP pruning;
- `python -m lemo.experiments.saved_16k`: the accuracy arm's memory axis (16K, the GPU bench's
  16-layer model) over keep ratio x MLP pruning, on fake CPU tensors;
- `python -m lemo.experiments.accuracy_bench`: the GPU accuracy arm (a 76M-parameter LM pretrained
  and fine-tuned in one call; the memory/accuracy frontier and the default on it);
- `python -m lemo.experiments.rope_passkey`: linear RoPE scaling erases the shipped LM's
  passkey retrieval; how many of the accuracy bench's LoRA steps bring it back;
- `python -m lemo.experiments.diag_table`: diag runs as markdown tables;
- `python -m lemo.experiments.host_probe`: host-side cost of a GPU training step.
"""
