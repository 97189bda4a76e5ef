"""What the bench measures on the LLM side (reconstructed metrics; see the paper notes):

- `OracleJudge`: a classifier (a MiniLM-embedding head, or a byte CNN where MiniLM is not
  installed) trained on held-out real data that the server never sees; it judges the LLM's
  generations;
- `label_fidelity`: share of the LLM's label-y generations that the oracle labels y;
- `generative_accuracy`: the LLM as a classifier, argmax_y p_LLM(x | prompt_y);
- held-out perplexity: `shared.text.evaluate_perplexity` on general text.
"""

from __future__ import annotations

import numpy as np
import torch

from crosslm.generation import sequence_nll
from crosslm.models import MiniLMEmbedder, build_slm, slm_features
from crosslm.slm import predict_proba, train_slm

__all__ = ["OracleJudge", "label_fidelity", "generative_accuracy"]


class OracleJudge:
    """An SLM of `kind` (default: MiniLM embeddings + an MLP head) trained on (texts, labels)
    held out from everyone. `embedder` may be None for the byte kinds (cnn, bilstm)."""

    def __init__(self, embedder: MiniLMEmbedder | None, texts: list[str], labels: np.ndarray,
                 num_classes: int, name: str, seed: int = 0, epochs: int = 60,
                 kind: str = "minilm", max_bytes: int = 160):
        self.embedder, self.kind, self.max_bytes = embedder, kind, max_bytes
        torch.manual_seed(seed)
        self.head = build_slm(kind, num_classes)
        if kind == "minilm" and embedder is not None:
            x = torch.from_numpy(embedder.cached(name, texts))
        else:
            x = slm_features(kind, texts, embedder, max_bytes)
        train_slm(self.head, x, torch.eye(num_classes)[labels], torch.ones(len(texts)),
                  epochs, 3e-3, 32, seed)

    def predict(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, np.int64)
        x = slm_features(self.kind, texts, self.embedder, self.max_bytes)
        return predict_proba(self.head, x).argmax(1)


def label_fidelity(oracle: OracleJudge, texts: list[str], labels: np.ndarray) -> float:
    """Share of generations whose oracle label equals the label they were generated for."""
    if not texts:
        return float("nan")
    return float((oracle.predict(texts) == np.asarray(labels)).mean())


def generative_accuracy(model, codec, prompts: list[list[int]], texts: list[str],
                        labels: np.ndarray, max_tokens: int = 96) -> float:
    """argmax_y p_LLM(x | prompt_y) accuracy (mean token NLL; x cut to `max_tokens`)."""
    C = len(prompts)
    conts = [codec.encode(t)[:max_tokens] for t in texts]
    pp = [prompts[c] for _ in conts for c in range(C)]
    cc = [x for x in conts for _ in range(C)]
    nll = sequence_nll(model, pp, cc).reshape(len(texts), C)
    return float((nll.argmin(1) == np.asarray(labels)).mean())
