"""lemo: long-context LoRA fine-tuning with contextual token sparsity (LeMo / JENGA, USENIX ATC'25).

Per layer and per input, LeMo scores 64-token key blocks by their informativeness (positive
pre-softmax logits, tile max, column sum), keeps the top blocks and runs the attention block on
kept tokens only, so dropped tokens' activations are never saved for backward. Modules:

- `lemo.scoring`: informativeness tiles, key-block scores, `TokenEliminator` (paper §4.2);
- `lemo.layers`: eliminating decoder layers for Llama / Mistral / Qwen2 / Qwen3 / Phi-3,
  Gemma 2 / 3 (sliding windows and soft-capping honoured) and OPT;
- `lemo.mlp`: MLP saved-channel pruning (approximate input gradient, switchable);
- `lemo.predictor`: `PatternPredictor` with elastic size (§4.3);
- `lemo.loss`: segment-based lm_head + cross-entropy (§4.4 peak cutting);
- `lemo.patch`: `apply_lemo(model, LemoConfig)` on a transformers (+ peft) model;
- `lemo.baselines`: LongLoRA S2-Attn; `lemo.models`, `lemo.data`: tiny LM, corpus, passkey;
- `lemo.kernels`: the hot operators' dispatch point (PyTorch reference / Triton);
- recipes: `python -m lemo.train | lemo.eval | lemo.bench`.

Example (what a notebook user types; about a second on a CPU): a tiny Llama with LoRA, then LeMo
on it. The eliminating layers keep a quarter of the tokens, so autograd saves less.

>>> import torch
>>> from lemo import LemoConfig, LoraConfig, ModelConfig, add_lora, apply_lemo, build_model
>>> from lemo import causal_lm_loss
>>> from shared.memory import SavedTensorMeter
>>> model = add_lora(build_model(ModelConfig(hidden_size=32, num_layers=4,
...                                          intermediate_size=64)), LoraConfig())
>>> x = torch.randint(0, 256, (1, 512))                  # byte tokens
>>> with SavedTensorMeter(exclude=list(model.parameters())) as dense:
...     causal_lm_loss(model, x).backward()
>>> layers = apply_lemo(model, LemoConfig(keep_ratio=0.25, block_size=64))
>>> [layer.eliminating for layer in layers]              # first and last layers stay dense
[False, False, True, False]
>>> with SavedTensorMeter(exclude=list(model.parameters())) as lemo:
...     causal_lm_loss(model, x, segment=128).backward()
>>> layers[2].last_idx.shape                             # tokens the eliminating layer kept
torch.Size([1, 128])
>>> lemo.bytes < dense.bytes
True

Any Llama / Mistral / Qwen2 / Qwen3 / Phi-3 / Gemma 2 / Gemma 3 / OPT checkpoint works the same
way: `ModelConfig(path=dir)` and `load_model`, or `apply_lemo` on your own transformers (+ peft)
model.
"""

from lemo.config import LemoConfig, LoraConfig, ModelConfig, PredictorConfig
from lemo.loss import causal_lm_loss
from lemo.models import add_lora, build_model, load_model, set_checkpointing
from lemo.patch import apply_lemo, configure_lemo, lemo_layers
from lemo.predictor import PatternPredictor
from lemo.scoring import TokenEliminator, informativeness_tiles, key_block_scores

__all__ = ["LemoConfig", "LoraConfig", "ModelConfig", "PredictorConfig", "apply_lemo",
           "configure_lemo", "lemo_layers", "build_model", "load_model", "add_lora",
           "set_checkpointing", "causal_lm_loss", "TokenEliminator", "PatternPredictor",
           "informativeness_tiles", "key_block_scores"]
