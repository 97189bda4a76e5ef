"""lemo: long-context LoRA fine-tuning with contextual token sparsity (LeMo / JENGA, USENIX ATC'25).

Per layer and per input, LeMo scores 64-token key blocks by their informativeness (positive
pre-softmax logits, tile max, column sum), keeps the top blocks and runs the attention block on
kept tokens only, so dropped tokens' activations are never saved for backward. Modules:

- `lemo.scoring`: informativeness tiles, key-block scores, `TokenEliminator` (paper §4.2);
- `lemo.layers`: eliminating decoder layers for Llama / Mistral / Qwen2 and OPT;
- `lemo.mlp`: MLP saved-channel pruning (approximate input gradient, switchable);
- `lemo.predictor`: `PatternPredictor` with elastic size (§4.3);
- `lemo.loss`: segment-based lm_head + cross-entropy (§4.4 peak cutting);
- `lemo.patch`: `apply_lemo(model, LemoConfig)` on a transformers (+ peft) model;
- `lemo.baselines`: LongLoRA S2-Attn; `lemo.models`, `lemo.data`: tiny LM, corpus, passkey;
- `lemo.kernels`: the hot operators' dispatch point (PyTorch reference / Triton);
- recipes: `python -m lemo.train | lemo.eval | lemo.bench`.
"""

from lemo.config import LemoConfig
from lemo.patch import apply_lemo, configure_lemo

__all__ = ["LemoConfig", "apply_lemo", "configure_lemo"]
