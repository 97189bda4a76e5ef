"""The CrossLM round as a `shared.fl` Strategy and FLClient (so it runs in-process and on
Flower unchanged). One round r:

    server -> clients : global_state = {train_*: the synthetic set selected so far,
                                        query_*: this round's fresh LLM samples}
    client k          : SLM_k trains on D_k + train set; scores each query sample
                        s_k = p_SLM_k(y | x~)
    clients -> server : {"scores": (N,)} (+ {"probs": (N, C)} with soft labels)
    server            : s = aggregate(s_k); LLM update weighted by s (+ guard);
                        best samples join the train set; the LLM samples the next query.

Synthetic text travels as UTF-8 bytes in a (N, L) uint8 tensor with a length vector; nothing a
client uploads depends on its private text except through the SLM's scores. The loop follows
the paper's outline (SLMs steer generation, both sides train on the generated data); the
message layout, accumulation of the selected set and the round order are reconstructed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crosslm.config import CrossLMConfig
from crosslm.data import FederatedText
from crosslm.feedback import (
    aggregate_scores,
    ngram_novelty,
    sample_weights,
    select_for_clients,
    update_llm,
)
from crosslm.generation import clean_samples, label_prompts, sample_label_conditioned
from crosslm.models import ByteCodec, MiniLMEmbedder, build_slm, slm_features
from crosslm.slm import accuracy, label_scores, predict_proba, train_slm
from shared.fl import Strategy, Update, round_rng
from shared.log import get_logger

__all__ = ["texts_to_tensors", "tensors_to_texts", "CrossLMClient", "CrossLMStrategy",
           "synthetic_state", "UPLOAD_KEYS"]

log = get_logger(__name__)

UPLOAD_KEYS = {"scores", "probs"}  # everything a CrossLM client may upload


def texts_to_tensors(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) uint8 UTF-8 bytes (zero padded) and (N,) int64 lengths."""
    raw = [t.encode("utf-8") for t in texts]
    width = max([len(r) for r in raw], default=0)
    out = torch.zeros((len(raw), max(width, 1)), dtype=torch.uint8)
    for i, r in enumerate(raw):
        if r:
            out[i, :len(r)] = torch.frombuffer(bytearray(r), dtype=torch.uint8)
    return out, torch.tensor([len(r) for r in raw], dtype=torch.int64)


def tensors_to_texts(data: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    return [bytes(data[i, :int(n)].tolist()).decode("utf-8", errors="replace")
            for i, n in enumerate(lengths)]


def synthetic_state(train_texts: list[str], train_labels: np.ndarray,
                    query_texts: list[str], query_labels: np.ndarray,
                    train_soft: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The server -> client message of a round (see the module docstring)."""
    tt, tl = texts_to_tensors(train_texts)
    qt, ql = texts_to_tensors(query_texts)
    state = {"train_text": tt, "train_len": tl,
             "train_label": torch.as_tensor(np.asarray(train_labels, np.int64)),
             "query_text": qt, "query_len": ql,
             "query_label": torch.as_tensor(np.asarray(query_labels, np.int64))}
    if train_soft is not None:
        state["train_soft"] = torch.as_tensor(np.asarray(train_soft, np.float32))
    return state


@dataclass
class _ClientData:
    texts: list[str]
    labels: np.ndarray


class CrossLMClient:
    """Client k: private texts, an SLM of kind `kinds[k]` (its weights live in the client's
    private store under "slm.*"), the shared test set for evaluation."""

    def __init__(self, fed: FederatedText, kinds: list[str], cfg: CrossLMConfig,
                 embedder: MiniLMEmbedder | None, seed: int):
        self.fed, self.cfg, self.embedder, self.seed = fed, cfg, embedder, seed
        self.kinds = kinds if len(kinds) == fed.num_clients else kinds * fed.num_clients
        self.num_classes = fed.task.num_classes
        self.data = [_ClientData(fed.texts(p), fed.task.labels[p]) for p in fed.private]
        self._feat: dict[tuple, torch.Tensor] = {}
        from shared.runtime import pick_device

        self.device = pick_device(cfg.device)  # where the SLMs train (weights stay on CPU)

    def features(self, cid: int, texts: list[str], key: str | None = None) -> torch.Tensor:
        kind = self.kinds[cid]
        cache_key = (kind, key) if key else None
        if cache_key and cache_key in self._feat:
            return self._feat[cache_key]
        if kind == "minilm" and key and self.embedder is not None:
            f = torch.from_numpy(self.embedder.cached(key, texts))
        else:
            f = slm_features(kind, texts, self.embedder, self.cfg.slm.max_bytes)
        if cache_key:
            self._feat[cache_key] = f
        return f

    def model(self, cid: int, private: dict) -> torch.nn.Module:
        torch.manual_seed(self.seed * 1000 + cid)
        m = build_slm(self.kinds[cid], self.num_classes)
        weights = {k[4:]: v for k, v in private.items() if k.startswith("slm.")}
        if weights:
            m.load_state_dict(weights)
        return m.to(self.device)

    def fit(self, client_id: int, global_state: dict, config: dict, private: dict) -> Update:
        cid, rnd = client_id, int(config.get("round", 1))
        d, C, s = self.data[cid], self.num_classes, self.cfg.slm
        model = self.model(cid, private)
        x_priv = self.features(cid, d.texts, key=f"{self.fed.task.name}-c{cid}-private")
        eye = torch.eye(C)
        targets, weights, xs = [eye[d.labels]], [torch.ones(len(d.texts))], [x_priv]
        n_syn = int(global_state["train_len"].numel()) if "train_len" in global_state else 0
        if n_syn:
            syn = tensors_to_texts(global_state["train_text"], global_state["train_len"])
            xs.append(self.features(cid, syn))
            y_syn = global_state["train_label"].numpy()
            soft = global_state.get("train_soft")
            targets.append(soft.float() if (s.soft_labels and soft is not None) else eye[y_syn])
            weights.append(torch.full((n_syn,), s.synthetic_weight))
        loss = train_slm(model, torch.cat(xs), torch.cat(targets), torch.cat(weights),
                         s.epochs, s.lr, s.batch, seed=int(round_rng(self.seed, rnd, cid)
                                                           .integers(2**31)))
        private.update({f"slm.{k}": v.detach().cpu().clone()
                        for k, v in model.state_dict().items()})
        state: dict[str, torch.Tensor] = {}
        if "query_len" in global_state and global_state["query_len"].numel():
            q = tensors_to_texts(global_state["query_text"], global_state["query_len"])
            xq = self.features(cid, q)
            ql = global_state["query_label"].numpy()
            state["scores"] = torch.from_numpy(label_scores(model, xq, ql))
            if s.soft_labels:
                state["probs"] = torch.from_numpy(predict_proba(model, xq))
        return Update(cid, state, len(d.texts), {"train_loss": loss})

    def evaluate(self, client_id: int, global_state: dict, config: dict,
                 private: dict) -> dict[str, float]:
        """Accuracy on the shared test set and (when there is one) the out-of-family set."""
        model = self.model(client_id, private)
        fed = self.fed
        out = {"acc": accuracy(model, self.features(client_id, fed.texts(fed.test),
                                                    key=f"{fed.task.name}-test"),
                               fed.task.labels[fed.test])}
        if fed.ood is not None:
            out["ood_acc"] = accuracy(model, self.features(client_id, fed.ood.texts,
                                                           key=f"{fed.ood.name}-all"),
                                      fed.ood.labels)
        return out


class CrossLMStrategy(Strategy):
    """The CrossLM server: aggregates the scores, updates the LLM (LoRA) on its weighted
    samples with the generalisation guard, selects the samples the clients train on next and
    generates the next round's query set.

    `mode`: "crosslm" (all of it), "kd" (data-free KD: the LLM is never updated), "standalone"
    (no synthetic data at all: clients train on D_k only).
    """

    def __init__(self, llm, codec, descriptions: list[str], general: np.ndarray | None,
                 cfg: CrossLMConfig, mode: str = "crosslm"):
        self.llm, self.codec, self.cfg, self.mode = llm, codec, cfg, mode
        self.general = general
        self.num_classes = len(descriptions)
        self.prompts = label_prompts(codec, descriptions, cfg.llm.conditioning,
                                     cfg.gen.prompt_template)
        self.pool_texts: list[str] = []
        self.pool_labels = np.zeros(0, np.int64)
        self.pool_soft = np.zeros((0, self.num_classes), np.float32)
        self.round_log: dict[int, dict] = {}
        self.query_texts: list[str] = []
        self.query_labels = np.zeros(0, np.int64)
        super().__init__(self._state(1), seed=cfg.seed)

    # -- generation ------------------------------------------------------------------------
    def generate(self, rnd: int, per_label: int | None = None,
                 purpose: int = 0) -> tuple[list[str], np.ndarray]:
        g = self.cfg.gen
        seed = int(round_rng(self.cfg.seed, rnd, 100 + purpose).integers(2**31))
        vocab_limit = 256 if isinstance(self.codec, ByteCodec) else None
        texts, labels = sample_label_conditioned(
            self.llm, self.codec, self.prompts, per_label or g.per_label, g.max_new_tokens,
            g.temperature, g.top_p, seed, vocab_limit, g.batch_labels)
        return clean_samples(texts, labels, g.min_chars, self.cfg.data.max_chars)

    def _state(self, rnd: int) -> dict[str, torch.Tensor]:
        if self.mode == "standalone" or rnd > self.cfg.fl.rounds:  # no round left to score it
            self.query_texts, self.query_labels = [], np.zeros(0, np.int64)
        else:
            self.query_texts, self.query_labels = self.generate(rnd)
        soft = self.pool_soft if self.cfg.slm.soft_labels else None
        return synthetic_state(self.pool_texts, self.pool_labels, self.query_texts,
                               self.query_labels, soft)

    # -- the round --------------------------------------------------------------------------
    def aggregate_fit(self, rnd: int, updates: list[Update]) -> dict:
        fb = self.cfg.feedback
        n = len(self.query_texts)
        ups = [u for u in updates if "scores" in u.state and u.state["scores"].numel() == n]
        if self.mode == "standalone" or not ups or n == 0:
            self.global_state = self._state(rnd + 1)
            return self.global_state
        s = aggregate_scores(np.stack([u.state["scores"].numpy() for u in ups]),
                             np.array([u.num_examples for u in ups], np.float64))
        y = self.query_labels
        rng = round_rng(self.cfg.seed, rnd, 7)
        if fb.enabled:
            w, bottom = sample_weights(s, y, fb.weighting, fb.topq)
            sel = select_for_clients(s, y, self.cfg.gen.keep_top)
        else:  # no feedback: unweighted samples and a random selection of the same size
            w, bottom = np.ones(n), np.zeros(n, bool)
            sel = np.sort(np.concatenate([
                rng.choice(np.flatnonzero(y == c), max(1, int(round(
                    self.cfg.gen.keep_top * (y == c).sum()))), replace=False)
                for c in np.unique(y)]))
        if fb.novelty:
            w = w * ngram_novelty(self.query_texts)
        losses = []
        if self.mode == "crosslm" and fb.update_llm:
            conts = [self.codec.encode(t) for t in self.query_texts]
            prompts = [self.prompts[int(c)] for c in y]
            L = self.cfg.llm
            losses = update_llm(self.llm, prompts, conts, w, bottom if fb.unlikelihood else
                                np.zeros(n, bool), self.general, L.steps, L.batch, L.lr,
                                fb.guard, fb.guard_weight, fb.unlikelihood,
                                L.pretrain_seq, rng, fb.sample_kl, fb.label_contrast,
                                self.prompts, y, fb.contrast_batch)
        if "probs" in ups[0].state:
            probs = np.mean([u.state["probs"].numpy() for u in ups], axis=0)
        else:
            probs = np.eye(self.num_classes, dtype=np.float32)[y]
        self.pool_texts += [self.query_texts[i] for i in sel]
        self.pool_labels = np.concatenate([self.pool_labels, y[sel]])
        self.pool_soft = np.concatenate([self.pool_soft, probs[sel].astype(np.float32)])
        self.round_log[rnd] = {
            "mean_score": float(s.mean()), "selected_score": float(s[sel].mean()),
            "num_query": n, "pool": len(self.pool_texts),
            "llm_loss": float(np.mean(losses)) if losses else None,
            "score_per_label": [float(s[y == c].mean()) if (y == c).any() else None
                                for c in range(self.num_classes)]}
        self.global_state = self._state(rnd + 1)
        return self.global_state

    def state_dict(self) -> dict:
        d = super().state_dict()
        trainable = {k: v.detach().clone() for k, v in self.llm.named_parameters()
                     if v.requires_grad}
        d.update(llm=trainable, pool_texts=list(self.pool_texts), pool_labels=self.pool_labels,
                 pool_soft=self.pool_soft, round_log=self.round_log,
                 query_texts=list(self.query_texts), query_labels=self.query_labels)
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        params = dict(self.llm.named_parameters())
        with torch.no_grad():
            for k, v in d["llm"].items():
                params[k].copy_(v)
        self.pool_texts, self.pool_labels = list(d["pool_texts"]), d["pool_labels"]
        self.pool_soft, self.round_log = d["pool_soft"], dict(d["round_log"])
        self.query_texts, self.query_labels = list(d["query_texts"]), d["query_labels"]
