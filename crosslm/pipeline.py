"""Assemble a CrossLM federation from a config (data, LLM, SLM clients, oracle) and measure
it. `build_setup(cfg)` does the expensive, arm-independent part once (data split, MiniLM,
the pretrained LLM, the oracle); `make_arm(setup, mode)` gives a fresh LoRA-wrapped copy of
the LLM and a fresh client per arm, so arms differ only in their switches."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from crosslm.baselines import FedAvgSLMClient, fedavg_strategy
from crosslm.config import CrossLMConfig
from crosslm.data import FederatedText, federate, load_task, ood_task, task_llm_excluded
from crosslm.evaluation import OracleJudge, generative_accuracy, label_fidelity
from crosslm.federation import CrossLMClient, CrossLMStrategy
from crosslm.models import (
    MiniLMEmbedder,
    general_corpus,
    load_llm,
    pretrained_llm,
    with_lora,
)
from shared.text import evaluate_perplexity

__all__ = ["Setup", "build_setup", "make_arm", "fresh_llm", "llm_metrics", "llm_metrics_before",
           "client_metrics", "MODES", "needs_minilm"]

MODES = ("crosslm", "kd", "standalone", "fedavg")


@dataclass
class Setup:
    cfg: CrossLMConfig
    fed: FederatedText
    embedder: MiniLMEmbedder | None  # None when no SLM, arm or oracle reads MiniLM
    base_llm: torch.nn.Module
    codec: object
    general_train: np.ndarray
    general_heldout: np.ndarray
    oracle: OracleJudge


def build_setup(cfg: CrossLMConfig) -> Setup:
    d, L = cfg.data, cfg.llm
    task = load_task(d.task, d.path, d.max_per_class, d.max_chars)
    fed = federate(task, d.num_clients, d.beta, d.private_per_client, d.test_frac,
                   d.oracle_frac, cfg.seed, ood_task(task, d.ood_per_class, d.max_chars))
    exclude = task_llm_excluded()
    if L.path:
        llm, codec = load_llm(L.path)
    else:
        llm, codec = pretrained_llm(L.hidden, L.layers, L.heads, L.intermediate,
                                    L.pretrain_steps, L.pretrain_batch, L.pretrain_seq,
                                    L.pretrain_lr, exclude, device=_device(cfg))
    embedder = MiniLMEmbedder(path=cfg.slm.minilm_dir) if needs_minilm(cfg) else None
    oracle = OracleJudge(embedder, fed.texts(fed.oracle), task.labels[fed.oracle],
                         task.num_classes, f"{task.name}-oracle-s{cfg.seed}", cfg.seed,
                         kind=cfg.oracle, max_bytes=cfg.slm.max_bytes)
    return Setup(cfg, fed, embedder, llm, codec,
                 general_corpus("train", exclude, max_bytes=4 << 20),
                 general_corpus("test", exclude, max_bytes=1 << 20), oracle)


def needs_minilm(cfg: CrossLMConfig) -> bool:
    """Whether a run reads MiniLM embeddings (an SLM kind, the oracle or a homogeneous arm)."""
    arms = getattr(cfg, "arms", [])
    return ("minilm" in cfg.slm.kinds or cfg.oracle == "minilm"
            or any(a in arms for a in ("standalone-minilm", "fedavg")))


def _device(cfg: CrossLMConfig) -> str:
    from shared.runtime import pick_device

    return pick_device(cfg.device)


def make_arm(setup: Setup, mode: str, cfg: CrossLMConfig | None = None,
             kinds: list[str] | None = None):
    """(strategy, client) of one arm: crosslm | kd | standalone | fedavg. `kinds` overrides
    the clients' SLM kinds (fedavg needs one kind for all)."""
    cfg = cfg or setup.cfg
    kinds = kinds or cfg.slm.kinds
    if mode == "fedavg":
        client = FedAvgSLMClient(setup.fed, kinds, cfg, setup.embedder, cfg.seed)
        return fedavg_strategy(client, cfg.seed), client
    if mode not in MODES:
        raise ValueError(f"unknown arm mode '{mode}' ({', '.join(MODES)})")
    strategy = CrossLMStrategy(fresh_llm(setup, cfg), setup.codec,
                               setup.fed.task.descriptions(), setup.general_train, cfg, mode)
    client = CrossLMClient(setup.fed, kinds, cfg, setup.embedder, cfg.seed)
    return strategy, client


def fresh_llm(setup: Setup, cfg: CrossLMConfig | None = None):
    """A LoRA-wrapped copy of the pretrained LLM on the run's device (adapters at their
    seeded initialisation: the update B is zero, so it computes what the base model does)."""
    cfg = cfg or setup.cfg
    torch.manual_seed(cfg.seed)
    llm = with_lora(copy.deepcopy(setup.base_llm), cfg.llm.lora_rank, cfg.llm.lora_alpha)
    return llm.to(_device(cfg)).eval()


def llm_metrics(setup: Setup, llm, prompts, rnd: int, per_label: int,
                max_test: int = 200) -> dict[str, float]:
    """Label fidelity (oracle-judged fresh generations), generative-classifier accuracy on the
    test set (up to `max_test` texts) and held-out general-text perplexity."""
    from crosslm.generation import clean_samples, sample_label_conditioned
    from crosslm.models import ByteCodec
    from shared.fl import round_rng

    cfg, fed = setup.cfg, setup.fed
    g = cfg.gen
    seed = int(round_rng(cfg.seed, rnd, 555).integers(2**31))
    texts, labels = sample_label_conditioned(
        llm, setup.codec, prompts, per_label, g.max_new_tokens, g.temperature, g.top_p, seed,
        256 if isinstance(setup.codec, ByteCodec) else None, g.batch_labels)
    texts, labels = clean_samples(texts, labels, g.min_chars, cfg.data.max_chars)
    rng = np.random.default_rng([cfg.seed, 31])
    test = rng.permutation(fed.test)[:max_test]
    gen_acc = generative_accuracy(llm, setup.codec, prompts, fed.texts(test),
                                  fed.task.labels[test])
    tokens = setup.general_heldout
    ppl = evaluate_perplexity(llm, tokens, cfg.llm.pretrain_seq, max_windows=16,
                              device=str(next(llm.parameters()).device)) \
        if isinstance(setup.codec, ByteCodec) else float("nan")
    return {"fidelity": label_fidelity(setup.oracle, texts, labels), "gen_acc": gen_acc,
            "perplexity": ppl, "num_generated": len(texts)}


def llm_metrics_before(setup: Setup, cfg: CrossLMConfig | None = None) -> dict[str, float]:
    """`llm_metrics` of the pretrained LLM (round 0), without building an arm (whose server
    would sample a first query set that nobody scores)."""
    from crosslm.generation import label_prompts

    cfg = cfg or setup.cfg
    prompts = label_prompts(setup.codec, setup.fed.task.descriptions(), cfg.llm.conditioning,
                            cfg.gen.prompt_template)
    return llm_metrics(setup, fresh_llm(setup, cfg), prompts, 0, cfg.gen.per_label)


def client_metrics(client: CrossLMClient, private: dict[int, dict],
                   global_state: dict | None = None) -> dict[str, list[float]]:
    """Per-client test accuracy (and out-of-family accuracy) of the trained SLMs."""
    out: dict[str, list[float]] = {}
    for cid in range(client.fed.num_clients):
        m = client.evaluate(cid, global_state or {}, {}, private.get(cid, {}))
        for k, v in m.items():
            out.setdefault(k, []).append(float(v))
    return out
