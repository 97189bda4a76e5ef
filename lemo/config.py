"""Typed configs of `lemo` (YAML -> dataclasses via `shared.config`).

`LemoConfig` is the technique's knobs (paper §4); `ModelConfig` the tiny embedded LM (or a path
to any supported HF checkpoint); `LoraConfig` the peft adapter (paper's AE: r=8, α=16, q/k/v/o);
`TrainConfig` / `EvalConfig` the recipes' whole truth, saved into every run dir.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from shared.config import NonNegInt, PosFloat, PosInt, Prob, Range

__all__ = ["LemoConfig", "PAPER_POLICY", "UNBIASED_POLICY", "ModelConfig", "LoraConfig",
           "DataConfig", "TrainConfig", "EvalConfig", "PredictorConfig"]


# Selection policies as LemoConfig fields. The paper's (§4.2): the causal key-block column sum,
# top-k. The unbiased policy (ours, reconstructed): scores divided by the number of query tiles
# that can attend to each key block, the first (attention sink) and last (local window) blocks
# always kept, the rest of the top-k budget filled by score.
PAPER_POLICY: dict = dict(selection="topk", score_reduce="sum", causal_scores=True,
                          sink_blocks=0, local_blocks=0)
UNBIASED_POLICY: dict = dict(selection="topk", score_reduce="mean", causal_scores=True,
                             sink_blocks=1, local_blocks=1)


@dataclass
class LemoConfig:
    """Contextual token sparsity (paper §4.2-§4.4).

    The defaults are the library's default, picked on the accuracy/memory frontier of a
    GPU-pretrained 76M-parameter LM (lemo/README.md, "The default"): the unbiased policy at keep
    0.6 with 50% MLP channel pruning, the point with the fewest saved bytes (0.554x dense LoRA's
    at 16K on the 16-layer model) measured within 3% of LoRA's perplexity and 5 points of its
    passkey accuracy at both seeds run (`accuracy_bench.default_across_seeds`).
    `LemoConfig.paper()` is the paper's AE setting (causal column sum, keep 0.4, 80% pruning)."""

    enabled: bool = True  # False: plain LoRA (dense), the baseline
    block_size: PosInt = 64  # tokens per block (paper: 64); sequence length must be a multiple
    keep_ratio: float = 0.6  # top-k selection: fraction of key blocks kept (paper's AE: 0.4)
    selection: Literal["topk", "threshold"] = "topk"  # threshold = paper Algorithm 1
    thresholds: list[float] = field(default_factory=list)  # per layer; empty: the input's mean
    # key-block score over query tiles: "mean" divides the sum by the number of query tiles that
    # can attend to the block (the unbiased policy); "sum" is the paper's
    score_reduce: Literal["sum", "mean"] = "mean"
    causal_scores: bool = True  # tiles at or below the diagonal only; False: every query tile,
    # as the paper's I(T_j) = sum over all i != j (selection then depends on later tokens)
    # always-kept blocks (our option, not the paper's; 0 = off): the first `sink_blocks`
    # (attention sinks) and the last `local_blocks` (local window) of the sequence, then the
    # budget is filled by score. With score_reduce=mean: the unbiased policy (the default).
    sink_blocks: NonNegInt = 1
    local_blocks: NonNegInt = 1
    dense_first: float = 0.5  # leading fraction of layers that stay dense
    dense_last: bool = True  # the last layer stays dense
    scorer: Literal["exact", "predictor"] = "exact"  # exact block scores or learned predictors
    mlp_prune_ratio: float = 0.5  # share of MLP channels NOT saved for backward (AE: 0.8)
    segment_size: NonNegInt = 2048  # tokens per lm_head+CE segment; 0 = unsegmented HF loss
    eliminate_in_eval: bool = False  # evaluation runs dense unless asked
    # "s2": LongLoRA's shifted group attention baseline; MLP pruning still applies, so the
    # baseline as LongLoRA runs it also sets mlp_prune_ratio=0 (the benches' longlora_s2 arms do)
    attention: Literal["lemo", "s2"] = "lemo"
    s2_groups: PosInt = 4  # S2-Attn: group size = s / s2_groups
    # CUDA, Llama-family layers: an eliminating layer's attention (selection, gathers, q/k/v/o,
    # attention, scatter-add) runs as captured CUDA graphs (forward and backward;
    # `torch.cuda.make_graphed_callables`, all eliminating layers in one capture) when a
    # training input has at most this many tokens (batch x sequence); 0 = never. Shapes are static
    # at a fixed keep ratio, so one capture per input shape serves every step. It removes the
    # host's per-op cost, which decides the step time of short sequences on a fast GPU, at the
    # price of static buffers (inputs, outputs, saved activations) held between steps.
    cuda_graph_max_tokens: NonNegInt = 0

    @classmethod
    def paper(cls, **overrides) -> LemoConfig:
        """The paper's AE setting: causal key-block column sum, top-k at keep 0.4, 80% of MLP
        channels pruned from the saved activations; `overrides` replace any field."""
        return cls(**{**PAPER_POLICY, "keep_ratio": 0.4, "mlp_prune_ratio": 0.8, **overrides})

    def validate(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if not 0.0 <= self.dense_first <= 1.0:
            raise ValueError(f"dense_first must be in [0, 1], got {self.dense_first}")
        if not 0.0 <= self.mlp_prune_ratio < 1.0:
            raise ValueError(f"mlp_prune_ratio must be in [0, 1), got {self.mlp_prune_ratio}")
        if self.segment_size < 0:
            raise ValueError(f"segment_size must be >= 0, got {self.segment_size}")
        if self.sink_blocks < 0 or self.local_blocks < 0:
            raise ValueError(f"sink_blocks and local_blocks must be >= 0, got "
                             f"{self.sink_blocks}, {self.local_blocks}")
        if self.s2_groups < 1:
            raise ValueError(f"s2_groups must be >= 1, got {self.s2_groups}")
        if self.cuda_graph_max_tokens < 0:
            raise ValueError(f"cuda_graph_max_tokens must be >= 0, got "
                             f"{self.cuda_graph_max_tokens}")


@dataclass
class ModelConfig:
    """The embedded byte-level LM (pretrained by `lemo.pretrain`, shipped in `lemo/weights/`) or
    an HF checkpoint directory. The `pretrain_*` fields are the embedded LM's recipe: they (and
    the shape fields) form the key under which its weights are found or built."""

    path: str | None = None  # HF save_pretrained dir; None: the embedded model
    # the embedded / tiny model's family
    arch: Literal["llama", "mistral", "qwen2", "opt", "qwen3", "phi3", "gemma2", "gemma3"] = "llama"
    hidden_size: PosInt = 192
    num_layers: PosInt = 6
    num_heads: PosInt = 4
    num_kv_heads: PosInt = 2  # GQA (ignored by OPT)
    intermediate_size: PosInt = 512
    max_position_embeddings: PosInt = 8192  # RoPE needs no table; OPT learns one this long
    rope_theta: PosFloat = 10000.0
    # linear RoPE scaling (position interpolation, Chen et al. 2023): positions are divided by
    # this factor when the LM is loaded for fine-tuning / evaluation (1.0 = off). Not part of
    # the embedded LM's key: pretraining always runs unscaled.
    rope_scaling_factor: float = 1.0
    pretrained: bool = True  # embedded model: pretrain on the stdlib corpus (else random init)
    pretrain_steps: NonNegInt = 3000
    pretrain_seq_len: PosInt = 512  # the "pretrained length" that fine-tuning extends
    pretrain_batch: PosInt = 64
    pretrain_lr: PosFloat = 1.5e-3
    pretrain_warmup: NonNegInt = 100
    # share of pretraining windows that are passkey examples (at pretrain_seq_len): retrieval is
    # a skill the LM needs before context extension can be measured on it
    pretrain_passkey_mix: Prob = 0.2
    pretrain_corpus_bytes: PosInt = 32_000_000  # stdlib train split read for pretraining (cap)
    pretrain_seed: int = 0  # init + data order of the embedded LM (not the fine-tuning seed)

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} not divisible by num_heads "
                             f"{self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not divisible by num_kv_heads "
                             f"{self.num_kv_heads}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        if self.rope_scaling_factor < 1.0:
            raise ValueError(f"rope_scaling_factor must be >= 1.0 (1.0 = off), got "
                             f"{self.rope_scaling_factor}")
        if not 0.0 <= self.pretrain_passkey_mix <= 1.0:
            raise ValueError(f"pretrain_passkey_mix must be in [0, 1], got "
                             f"{self.pretrain_passkey_mix}")


@dataclass
class LoraConfig:
    """peft LoRA adapter (paper AE: r=8, alpha=16, dropout 0, q/k/v/o)."""

    r: PosInt = 8
    alpha: PosInt = 16
    dropout: Annotated[float, Range(0, 1, hi_open=True)] = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # LongLoRA (Chen et al. 2024, §3.3): also train the embeddings and all norm layers (peft
    # modules_to_save "embed_tokens" + every module whose name ends in "norm"; tied lm_head too)
    train_embed_norm: bool = False


@dataclass
class DataConfig:
    """Fine-tuning text: the stdlib corpus (default) or a .txt / .jsonl file."""

    train_path: str | None = None  # .txt or .jsonl ({"text": ...} per line); None: stdlib corpus
    val_path: str | None = None
    text_key: str = "text"  # jsonl field holding the text
    seq_len: PosInt = 2048
    batch_size: PosInt = 1
    passkey_mix: Prob = 0.5  # share of fine-tuning windows that are passkey examples
    max_corpus_bytes: PosInt = 4_000_000  # cap on the corpus read into memory


@dataclass
class TrainConfig:
    """`python -m lemo.train`: LoRA fine-tuning with (or without) LeMo."""

    seed: int = 0
    device: str = "auto"
    steps: NonNegInt = 100
    lr: PosFloat = 1e-3  # LoRA lr (paper: 2e-5 for 7B; tiny models want more)
    warmup: NonNegInt = 10
    grad_checkpointing: bool = False
    log_every: PosInt = 10
    save_every: PosInt = 50  # checkpoint (resume) every N steps
    distributed: Literal["ddp", "fsdp"] = "ddp"  # under torchrun (WORLD_SIZE > 1): DDP or FSDP2
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    lemo: LemoConfig = field(default_factory=LemoConfig)
    data: DataConfig = field(default_factory=DataConfig)
    predictor: PredictorConfig | None = None  # needed when lemo.scorer == "predictor"

    def validate(self) -> None:
        if self.data.seq_len % self.lemo.block_size:
            raise ValueError(f"data.seq_len {self.data.seq_len} is not a multiple of "
                             f"lemo.block_size {self.lemo.block_size} (pad the data or change one)")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")


@dataclass
class PredictorConfig:
    """Pattern predictors (paper §4.3) and their elastic size transformation."""

    hidden: PosInt = 128  # hidden units per predictor MLP (pruned by elastic sizing)
    out_dim: PosInt = 128  # Q̂/K̂ width
    steps: NonNegInt = 300  # training steps (LM frozen)
    lr: PosFloat = 1e-3
    windows: PosInt = 8  # captured training windows
    prune_every: PosInt = 50  # elastic: prune mostly-inactive units every N steps ...
    prune_until: NonNegInt = 150  # ... until this step
    dead_threshold: Prob = 0.8  # first round's dead-ratio threshold (then -0.05 per round)


@dataclass
class EvalConfig:
    """`python -m lemo.eval`: held-out perplexity and passkey accuracy of a trained run."""

    seed: int = 0
    device: str = "auto"
    run_dir: str | None = None  # a lemo.train run dir (config.yaml + adapter/); None: base model
    seq_len: PosInt = 2048
    ppl_windows: PosInt = 8
    passkey_trials: NonNegInt = 20
    eliminate: bool = False  # evaluate with token elimination (default: dense, as the paper)
    allow_missing_adapter: bool = False  # load a run whose adapter lacks some LoRA tensors
    model: ModelConfig = field(default_factory=ModelConfig)  # used when run_dir is None
    data: DataConfig = field(default_factory=DataConfig)  # val_path: held-out text (else stdlib)
