"""Pattern predictors with elastic size (paper §4.3; AE `models/predictor.py`,
`trainer/predictor_trainer.py`).

Per layer, a Q- and a K-predictor, shared across heads: the attention-input hidden state x
(b, s, D) is viewed per head (h heads of D/h) and per B-token block, flattened to (b, h, nb, B·D/h),
and mapped by a bias-free MLP (B·D/h → hidden → out, ReLU) to Q̂, K̂ (b, h, nb, out). The predicted
tile scores are Σ_h Q̂ K̂ᵀ / h (b, nb, nb), causal (lower triangle) or over every tile, as the
layer's `causal_scores`, and their column sums rank key blocks as the exact scores do. Training
(LM frozen) fits the exact tile scores with SmoothL1.

Elastic size transformation: every `prune_every` steps until `prune_until`, hidden units whose
output was ≤ 0 on more than `threshold` of the inputs seen since the last round are removed
(threshold starts at `dead_threshold` and drops by 0.05 per round), shrinking both Linear layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lemo.scoring import key_block_scores

__all__ = ["PatternPredictor", "BlockMLP", "train_predictor", "save_predictors",
           "load_predictors", "PREDICTORS_FILE"]

PREDICTORS_FILE = "predictors.safetensors"  # what lemo.train writes into its run dir
_KIND = "lemo.PatternPredictors"


class BlockMLP(nn.Module):
    """Bias-free in → hidden → out MLP with ReLU, counting how often each hidden unit is dead."""

    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, d_out, bias=False)
        self.register_buffer("dead", torch.zeros(hidden), persistent=False)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc1(x)
        if self.training:
            with torch.no_grad():
                self.dead += (z <= 0).reshape(-1, z.shape[-1]).sum(0).float()
                self.seen += z.numel() // z.shape[-1]
        return self.fc2(F.relu(z))

    @property
    def hidden(self) -> int:
        return self.fc1.out_features

    def prune(self, threshold: float) -> int:
        """Drop hidden units dead on > `threshold` of inputs since the last call; return count."""
        ratio = self.dead / max(1, self.seen)
        keep = (ratio <= threshold).nonzero().flatten()
        if keep.numel() == 0:  # never remove every unit
            keep = ratio.argmin().reshape(1)
        removed = self.hidden - keep.numel()
        if removed:
            fc1 = nn.Linear(self.fc1.in_features, keep.numel(), bias=False)
            fc2 = nn.Linear(keep.numel(), self.fc2.out_features, bias=False)
            fc1.weight.data.copy_(self.fc1.weight.data[keep])
            fc2.weight.data.copy_(self.fc2.weight.data[:, keep])
            self.fc1, self.fc2 = fc1.to(self.fc1.weight.device), fc2.to(self.fc2.weight.device)
        self.dead = torch.zeros(keep.numel(), device=self.dead.device)
        self.seen = 0
        return removed


class PatternPredictor(nn.Module):
    """Predicts one layer's block tile scores from its attention input x (b, s, D)."""

    def __init__(self, hidden_size: int, num_heads: int, block_size: int = 64, hidden: int = 128,
                 out_dim: int = 128):
        super().__init__()
        self.hidden_size, self.out_dim = hidden_size, out_dim
        self.num_heads, self.block_size = num_heads, block_size
        d_in = block_size * hidden_size // num_heads
        self.q_net = BlockMLP(d_in, hidden, out_dim)
        self.k_net = BlockMLP(d_in, hidden, out_dim)

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        nb, h = s // self.block_size, self.num_heads
        x = x.reshape(b, nb, self.block_size, h, d // h).permute(0, 3, 1, 2, 4)
        return x.reshape(b, h, nb, -1)

    def tiles(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        """(b, s, D) -> predicted tile scores (b, nb, nb); `causal`: tiles above the diagonal
        (key block > query block) are 0, as in the exact causal scores."""
        xb = self._blocks(x)
        q, k = self.q_net(xb), self.k_net(xb)
        t = torch.einsum("bhio,bhjo->bij", q, k) / self.num_heads
        return t.tril() if causal else t

    def key_scores(self, x: torch.Tensor, reduce: str = "sum", causal: bool = True,
                   visible: torch.Tensor | None = None) -> torch.Tensor:
        """(b, s, D) -> (b, nb) key-block scores (column sums of the predicted tiles; `visible`
        as in `key_block_scores`)."""
        return key_block_scores(self.tiles(x, causal), reduce, causal, visible)

    def prune(self, threshold: float) -> int:
        return self.q_net.prune(threshold) + self.k_net.prune(threshold)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def train_predictor(pred: PatternPredictor, data: list[tuple[torch.Tensor, torch.Tensor]],
                    steps: int, lr: float = 1e-3, prune_every: int = 50, prune_until: int = 150,
                    dead_threshold: float = 0.8, seed: int = 0, causal: bool = True) -> dict:
    """Fit `pred` to exact tiles: `data` is [(x (1, s, D), tiles (1, nb, nb))] captured with the
    LM frozen (causal or not, as `causal`). SmoothL1 on tiles normalised by the batch's mean
    exact score. Returns a log."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(pred.parameters(), lr=lr)
    pred.train()
    losses, sizes, thr = [], [], dead_threshold
    for step in range(steps):
        x, tiles = data[int(torch.randint(len(data), (1,), generator=g))]
        scale = tiles[tiles > 0].mean().clamp_min(1e-6)
        loss = F.smooth_l1_loss(pred.tiles(x, causal) / scale, tiles / scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if prune_every and (step + 1) % prune_every == 0 and step + 1 <= prune_until:
            if pred.prune(thr):
                opt = torch.optim.Adam(pred.parameters(), lr=lr)
            sizes.append((step + 1, pred.q_net.hidden, pred.k_net.hidden))
            thr = max(0.0, thr - 0.05)
    pred.eval()
    return {"losses": losses, "sizes": sizes}


@torch.no_grad()
def capture_scores(model: nn.Module, batches) -> dict[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Run the frozen model (exact scorer) on `batches` of input ids (1, s); return per
    eliminating layer the [(attention input x (1, s, D), exact tiles (1, nb, nb))] it saw."""
    from lemo.patch import lemo_layers

    layers = [m for m in lemo_layers(model) if m.eliminating]
    for m in layers:
        m.capture = []
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(input_ids=x)
        return {m.layer_idx: m.capture for m in layers}
    finally:
        for m in layers:
            m.capture = None
        model.train(was_training)


def fit_predictors(model: nn.Module, batches, cfg) -> dict:
    """Train one `PatternPredictor` per eliminating layer on captured exact scores (LM frozen)
    and install it (`layer.set_predictor`). `cfg`: a `PredictorConfig`. Returns a summary."""
    from lemo.patch import lemo_layers

    data = capture_scores(model, batches)
    out = {}
    for layer in lemo_layers(model):
        if layer.layer_idx not in data:
            continue
        hc = layer.self_attn.config
        pred = PatternPredictor(hc.hidden_size, hc.num_attention_heads, layer.cfg.block_size,
                                cfg.hidden, cfg.out_dim)
        full = pred.n_params()
        log = train_predictor(pred, data[layer.layer_idx], cfg.steps, cfg.lr, cfg.prune_every,
                              cfg.prune_until, cfg.dead_threshold, seed=layer.layer_idx,
                              causal=layer.cfg.causal_scores)
        layer.set_predictor(pred.to(next(model.parameters()).device))
        out[layer.layer_idx] = {"final_loss": sum(log["losses"][-10:]) / 10,
                                "params": pred.n_params(), "params_before_elastic": full,
                                "hidden": [pred.q_net.hidden, pred.k_net.hidden]}
    return out


def predictor_recall(model: nn.Module, batches) -> float:
    """Mean recall of the predictors' kept blocks vs the exact scorer's, over eliminating layers
    and held-out `batches`."""
    from lemo.patch import lemo_layers
    from lemo.scoring import selection_recall

    data = capture_scores(model, batches)
    recalls = []
    for layer in lemo_layers(model):
        if layer.layer_idx not in data or layer.predictor is None:
            continue
        reduce, causal = layer.cfg.score_reduce, layer.cfg.causal_scores
        with torch.no_grad():
            for x, tiles in data[layer.layer_idx]:
                exact = layer.eliminator.select_blocks(key_block_scores(tiles, reduce, causal))
                dev = next(layer.predictor.parameters()).device
                pred = layer.eliminator.select_blocks(
                    layer.predictor.key_scores(x.to(dev), reduce, causal).cpu())
                recalls.append(selection_recall(pred, exact, tiles.shape[-1]))
    if not recalls:
        raise ValueError("no eliminating layer has a predictor")
    return sum(recalls) / len(recalls)


def save_predictors(predictors: dict[int, PatternPredictor], path) -> None:
    """A layer -> predictor table as one safetensors file (shapes after elastic sizing in its
    JSON header; `shared.io.save_weights`)."""
    from shared.io import save_weights

    tensors, layers = {}, {}
    for idx, p in predictors.items():
        tensors |= {f"{idx}.{k}": v for k, v in p.state_dict().items()}
        layers[str(idx)] = {"hidden_size": p.hidden_size, "num_heads": p.num_heads,
                            "block_size": p.block_size, "out_dim": p.out_dim,
                            "q_hidden": p.q_net.hidden, "k_hidden": p.k_net.hidden}
    save_weights(path, tensors, {"kind": _KIND, "layers": layers})


def load_predictors(path) -> dict[int, PatternPredictor]:
    """The table `save_predictors` wrote, each predictor in eval mode; runs no code from the
    file. A missing, corrupt or foreign file or tensors that do not fit are a DataError."""
    from shared.errors import DataError
    from shared.io import load_weights
    from shared.validate import check_state_dict

    tensors, info = load_weights(path, _KIND)
    out = {}
    try:
        specs = {int(k): {f: int(v[f]) for f in ("hidden_size", "num_heads", "block_size",
                                                  "out_dim", "q_hidden", "k_hidden")}
                 for k, v in dict(info["layers"]).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: predictor metadata: {e}") from None
    for idx, c in specs.items():
        if min(c.values()) < 1 or c["hidden_size"] % c["num_heads"]:
            raise DataError(f"{path}: layer {idx}: impossible predictor shape {c}")
        with torch.device("meta"):  # shapes only: a corrupt header never allocates
            shape = PatternPredictor(c["hidden_size"], c["num_heads"], c["block_size"],
                                     c["q_hidden"], c["out_dim"])
            shape.k_net = BlockMLP(shape.k_net.fc1.in_features, c["k_hidden"], c["out_dim"])
        shapes = {k: tuple(v.shape) for k, v in shape.state_dict().items()}
        state = {k.split(".", 1)[1]: v for k, v in tensors.items()
                 if k.split(".", 1)[0] == str(idx)}
        check_state_dict(state, shapes, f"{path} (layer {idx})")
        p = PatternPredictor(c["hidden_size"], c["num_heads"], c["block_size"], c["q_hidden"],
                             c["out_dim"])
        p.k_net = BlockMLP(p.k_net.fc1.in_features, c["k_hidden"], c["out_dim"])
        p.load_state_dict(state)
        out[idx] = p.eval()
    extra = {k.split(".", 1)[0] for k in tensors} - {str(i) for i in specs}
    if extra:
        raise DataError(f"{path}: tensors for undeclared layers {sorted(extra)}")
    return out
