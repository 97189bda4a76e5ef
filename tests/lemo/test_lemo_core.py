"""Techniques of lemo against independent slow references (tiny shapes, CPU)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lemo.baselines import s2_attention
from lemo.config import LemoConfig, LoraConfig, ModelConfig
from lemo.layers import LemoLlamaDecoderLayer
from lemo.loss import causal_lm_loss, full_lm_loss
from lemo.mlp import PrunedGeGLUFunction, PrunedReluFunction, PrunedSwiGLUFunction
from lemo.models import add_lora, build_model, set_checkpointing
from lemo.patch import apply_lemo, configure_lemo, lemo_layers
from lemo.predictor import PatternPredictor, train_predictor
from lemo.scoring import TokenEliminator, informativeness_tiles, key_block_scores, selection_recall
from shared.memory import SavedTensorMeter

torch.set_num_threads(1)
B = 16  # block size in tests


def tiny(arch="llama", layers=4, seed=0):
    return build_model(ModelConfig(arch=arch, hidden_size=32, num_layers=layers, num_heads=4,
                                   num_kv_heads=2, intermediate_size=64), seed=seed).train()


def brute_force_tiles(q, k, block):
    """Full s×s logits, positive part, head mean, causal, tile max: obviously correct, O(s²)."""
    b, h, s, d = q.shape
    kk = k.repeat_interleave(h // k.shape[1], dim=1)
    logits = (q @ kk.transpose(-1, -2)) / math.sqrt(d)
    pos = logits.clamp_min(0).sum(1) / h
    pos = pos * torch.ones(s, s).tril()
    nb = s // block
    out = torch.zeros(b, nb, nb)
    for i in range(nb):
        for j in range(nb):
            out[:, i, j] = pos[:, i * block:(i + 1) * block, j * block:(j + 1) * block].amax((1, 2))
    return out


def test_block_scores_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 96, 8, generator=g), torch.randn(2, 2, 96, 8, generator=g)
    tiles = informativeness_tiles(q, k, 16)
    ref = brute_force_tiles(q, k, 16)
    assert torch.allclose(tiles, ref, atol=1e-5)
    assert torch.all(tiles.triu(1) == 0)
    col = key_block_scores(tiles)
    assert torch.allclose(col, torch.stack([ref[:, j:, j].sum(-1) for j in range(6)], -1))
    mean = key_block_scores(tiles, "mean")
    assert torch.allclose(mean, torch.stack([ref[:, j:, j].mean(-1) for j in range(6)], -1))


def test_non_causal_block_scores_use_every_query_tile():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 4, 64, 8, generator=g), torch.randn(1, 2, 64, 8, generator=g)
    tiles = informativeness_tiles(q, k, 16, causal=False)
    kk = k.repeat_interleave(2, dim=1)
    pos = ((q @ kk.transpose(-1, -2)) / math.sqrt(8)).clamp_min(0).sum(1) / 4  # no causal mask
    ref = pos.view(1, 4, 16, 4, 16).amax(dim=(2, 4))
    assert torch.allclose(tiles, ref, atol=1e-5)
    assert torch.allclose(key_block_scores(tiles, causal=False), ref.sum(1))
    assert torch.allclose(key_block_scores(tiles, "mean", causal=False), ref.mean(1))


def test_predictor_tiles_causal_and_not_equal_a_brute_force_product():
    torch.manual_seed(0)
    pred = PatternPredictor(32, 4, block_size=B, hidden=16, out_dim=8)
    x = torch.randn(1, 4 * B, 32)
    with torch.no_grad():
        xb = x.view(1, 4, B, 4, 8).permute(0, 3, 1, 2, 4).reshape(1, 4, 4, B * 8)
        qh = torch.relu(xb @ pred.q_net.fc1.weight.T) @ pred.q_net.fc2.weight.T
        kh = torch.relu(xb @ pred.k_net.fc1.weight.T) @ pred.k_net.fc2.weight.T
        ref = torch.zeros(1, 4, 4)
        for i in range(4):
            for j in range(4):
                ref[0, i, j] = sum(qh[0, h, i] @ kh[0, h, j] for h in range(4)) / 4
        assert torch.allclose(pred.tiles(x, causal=False), ref, atol=1e-5)
        assert torch.allclose(pred.tiles(x), ref.tril(), atol=1e-5)
        assert torch.allclose(pred.key_scores(x, causal=False), ref.sum(1), atol=1e-5)
        assert torch.allclose(pred.key_scores(x), ref.tril().sum(1), atol=1e-5)


def test_sequence_not_multiple_of_block_is_an_error():
    with pytest.raises(ValueError, match="multiple of block_size"):
        informativeness_tiles(torch.randn(1, 2, 50, 4), torch.randn(1, 2, 50, 4), 16)
    m = tiny()
    apply_lemo(m, LemoConfig(block_size=B, mlp_prune_ratio=0.0))
    with pytest.raises(ValueError, match="not a multiple of lemo.block_size"):
        causal_lm_loss(m, torch.randint(0, 256, (1, 40)), segment=32)


def test_eliminator_topk_and_threshold():
    scores = torch.tensor([[5.0, 1.0, 3.0, 0.5, 4.0], [0.1, 0.2, 9.0, 8.0, 0.3]])
    e = TokenEliminator(block_size=2, keep_ratio=0.4)
    assert e.select_blocks(scores).tolist() == [[0, 4], [2, 3]]
    assert e.select(scores)[0].tolist() == [0, 1, 8, 9]
    # threshold = mean: row 0 has 3 blocks >= 2.7, row 1 has 2 >= 3.52 -> both keep 3
    t = TokenEliminator(block_size=2, mode="threshold")
    assert t.select_blocks(scores).tolist() == [[0, 2, 4], [2, 3, 4]]
    assert TokenEliminator(2, 1.0).select_blocks(scores).tolist() == [[0, 1, 2, 3, 4]] * 2
    p = torch.tensor([[0, 4], [2, 4]])
    assert selection_recall(p, torch.tensor([[0, 4], [2, 3]]), 5) == 0.75


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "opt"])
def test_keep_ratio_one_reproduces_dense(arch):
    x = torch.randint(0, 256, (2, 64))
    dense = add_lora(tiny(arch), LoraConfig())
    # non-zero LoRA B so adapters affect outputs and receive gradients through A as well
    for n, p in dense.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    l0 = causal_lm_loss(dense, x, segment=0)
    l0.backward()
    g0 = grads(dense)
    dense.zero_grad()
    apply_lemo(dense, LemoConfig(keep_ratio=1.0, block_size=B, dense_first=0.0, dense_last=False,
                                 mlp_prune_ratio=0.0))
    l1 = causal_lm_loss(dense, x, segment=32)
    l1.backward()
    g1 = grads(dense)
    assert all(layer.last_idx.shape[1] == 64 for layer in lemo_layers(dense))
    assert torch.allclose(l0, l1, atol=1e-5)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for n in g0:
        assert torch.allclose(g0[n], g1[n], atol=1e-5, rtol=1e-4), n


def slow_eliminating_layer(layer, h, cos, sin, idx, rope_positions=None):
    """Reference: full-length q/k/v, eager attention masked to kept→kept causal pairs, output added
    at kept positions only. `rope_positions` overrides the RoPE positions of kept tokens."""
    a = layer.self_attn
    b, s, _ = h.shape
    x = layer.input_layernorm(h)
    q = a.q_proj(x).view(b, s, -1, a.head_dim).transpose(1, 2)
    k = a.k_proj(x).view(b, s, -1, a.head_dim).transpose(1, 2)
    v = a.v_proj(x).view(b, s, -1, a.head_dim).transpose(1, 2)
    if rope_positions is not None:
        pos = torch.zeros(b, s, dtype=torch.long)
        pos.scatter_(1, idx, rope_positions)
        cos, sin = cos[0][pos], sin[0][pos]

    def rot(t):
        t1, t2 = t.chunk(2, -1)
        return torch.cat([-t2, t1], -1)
    c, sn = cos.unsqueeze(1), sin.unsqueeze(1)
    q, k = q * c + rot(q) * sn, k * c + rot(k) * sn
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    kept = torch.zeros(b, s, dtype=torch.bool).scatter_(1, idx, True)
    allow = kept[:, :, None] & kept[:, None, :] & torch.ones(s, s, dtype=torch.bool).tril()
    allow = allow | torch.eye(s, dtype=torch.bool)  # dropped rows: any finite value (masked below)
    logits = (q @ k.transpose(-1, -2)) * a.scaling
    logits = logits.masked_fill(~allow[:, None], float("-inf"))
    o = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, s, -1)
    out = h + a.o_proj(o) * kept[..., None]
    return out + layer.mlp(layer.post_attention_layernorm(out))


def _one_layer():
    m = add_lora(tiny(layers=4), LoraConfig())
    for n, p in m.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    # mean-reduced scores: column sums alone would keep a prefix under the causal mask
    apply_lemo(m, LemoConfig(keep_ratio=0.5, block_size=B, score_reduce="mean", sink_blocks=0,
                             local_blocks=0, mlp_prune_ratio=0.0))
    layer = lemo_layers(m)[2]
    assert isinstance(layer, LemoLlamaDecoderLayer) and layer.eliminating
    h = torch.randn(2, 128, 32, requires_grad=True)
    pos = torch.arange(128)[None]
    cos, sin = m.get_base_model().model.rotary_emb(h, pos)
    return m, layer, h, cos, sin


def test_eliminating_layer_matches_slow_reference_with_gradients():
    m, layer, h, cos, sin = _one_layer()
    w = torch.randn(2, 128, 32)
    out = layer(h, position_embeddings=(cos, sin))
    idx = layer.last_idx
    assert idx.shape == (2, 64) and not torch.equal(idx[0], torch.arange(64))  # not a prefix
    (out * w).sum().backward()
    g = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    gh = h.grad.clone()
    layer.zero_grad()
    h.grad = None
    ref = slow_eliminating_layer(layer, h, cos, sin, idx)
    (ref * w).sum().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(gh, h.grad, atol=1e-5)
    dropped = torch.ones(2, 128, dtype=torch.bool).scatter_(1, idx, False)
    # dropped tokens pass the attention block unchanged (only the MLP touches them)
    mlp_only = h + layer.mlp(layer.post_attention_layernorm(h))
    assert torch.allclose(out[dropped], mlp_only[dropped], atol=1e-6)
    assert len(g) == 8  # A and B of q/k/v/o LoRA
    for n, p in layer.named_parameters():
        if n in g:
            assert torch.allclose(g[n], p.grad, atol=1e-5), n


def test_rope_uses_original_positions():
    m, layer, h, cos, sin = _one_layer()
    with torch.no_grad():
        out = layer(h, position_embeddings=(cos, sin))
        idx = layer.last_idx
        at_orig = slow_eliminating_layer(layer, h, cos, sin, idx, rope_positions=idx)
        compact = torch.arange(64).expand(2, 64)
        at_compact = slow_eliminating_layer(layer, h, cos, sin, idx, rope_positions=compact)
    assert torch.allclose(out, at_orig, atol=1e-5)
    assert not torch.allclose(out, at_compact, atol=1e-3)


def saved_bytes(model, x, cfg):
    configure_lemo(model, cfg)
    with SavedTensorMeter(exclude=list(model.parameters())) as meter:
        loss = causal_lm_loss(model, x, segment=cfg.segment_size)
    loss.backward()
    return meter.bytes


def test_saved_bytes_fall_with_keep_ratio():
    m = add_lora(tiny(layers=4), LoraConfig())
    apply_lemo(m, LemoConfig(block_size=B))
    x = torch.randint(0, 256, (1, 256))
    by = {r: saved_bytes(m, x, LemoConfig(block_size=B, keep_ratio=r, dense_first=0.0,
                                          dense_last=False)) for r in (1.0, 0.5, 0.25)}
    assert by[1.0] > by[0.5] > by[0.25]
    # attention-block bytes are linear in kept tokens: halving twice saves 2:1
    ratio = (by[1.0] - by[0.5]) / (by[0.5] - by[0.25])
    assert 1.8 < ratio < 2.2, ratio
    pruned = saved_bytes(m, x, LemoConfig(block_size=B, keep_ratio=1.0, dense_first=0.0,
                                          dense_last=False, mlp_prune_ratio=0.8))
    assert pruned < by[1.0]


def test_segment_loss_equals_full_loss_and_gradients():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(2, 50, 16, generator=g, requires_grad=True)
    w = torch.randn(256, 16, generator=g, requires_grad=True)
    y = torch.randint(0, 256, (2, 50), generator=g)
    y[0, 10:20] = -100
    from lemo import kernels
    from lemo.loss import shift_labels
    ref = full_lm_loss(h, w, y)
    gh, gw = torch.autograd.grad(ref, (h, w))
    seg = kernels.segmented_lm_loss(h, w, shift_labels(y), 16)
    sh, sw = torch.autograd.grad(seg, (h, w))
    assert torch.allclose(ref, seg, atol=1e-6)
    assert torch.allclose(gh, sh, atol=1e-6) and torch.allclose(gw, sw, atol=1e-6)
    m = tiny()
    x = torch.randint(0, 256, (2, 64))
    assert torch.allclose(causal_lm_loss(m, x, segment=0), causal_lm_loss(m, x, segment=16),
                          atol=1e-5)


@pytest.mark.parametrize("fn,act", [
    (PrunedSwiGLUFunction, F.silu),
    (PrunedGeGLUFunction, lambda t: F.gelu(t, approximate="tanh"))], ids=["swiglu", "geglu"])
def test_pruned_swiglu_gradient_is_the_kept_channel_gradient(fn, act):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 7, 8, generator=g, requires_grad=True)
    wg, wu, wd = (torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g),
                  torch.randn(8, 12, generator=g))
    y = fn.apply(x, wg, wu, wd, None, None, None, 4)
    dense = F.linear(act(x @ wg.t()) * (x @ wu.t()), wd)
    assert torch.allclose(y, dense, atol=1e-5)  # forward is exact
    (gx,) = torch.autograd.grad(y.sum(), x)
    a, u = act(x @ wg.t()), x @ wu.t()
    ch = (a.reshape(-1, 12).norm(dim=0) + u.reshape(-1, 12).norm(dim=0)).topk(4).indices
    xr = x.detach().requires_grad_()
    restricted = F.linear(act(xr @ wg[ch].t()) * (xr @ wu[ch].t()), wd[:, ch])
    (rx,) = torch.autograd.grad(restricted.sum(), xr)
    assert torch.allclose(gx, rx, atol=1e-5)
    y_all = fn.apply(x, wg, wu, wd, None, None, None, 12)
    (fx,) = torch.autograd.grad(y_all.sum(), x)
    (dx,) = torch.autograd.grad(dense.sum(), x)
    assert torch.allclose(fx, dx, atol=1e-5)  # keeping every channel is the exact gradient


def test_pruned_relu_gradient_is_the_kept_channel_gradient():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 8, generator=g, requires_grad=True)
    w1, b1, w2 = torch.randn(12, 8, generator=g), torch.randn(12, generator=g), torch.randn(8, 12)
    y = PrunedReluFunction.apply(x, w1, b1, w2, None, 5)
    (gx,) = torch.autograd.grad(y.sum(), x)
    ch = F.relu(x @ w1.t() + b1).norm(dim=0).topk(5).indices
    xr = x.detach().requires_grad_()
    (rx,) = torch.autograd.grad(F.linear(F.relu(xr @ w1[ch].t() + b1[ch]), w2[:, ch]).sum(), xr)
    assert torch.allclose(gx, rx, atol=1e-5)


@pytest.mark.parametrize("kind", ["swiglu", "geglu", "relu"])
def test_pruned_mlp_saves_only_the_kept_channels(kind):
    """The pruned MLP functions save the kept channels (and their ids), never the input x: the
    saved activation bytes are exactly 2 (gated) or 1 (ReLU) x N x C values plus C int64 ids."""
    from shared.memory import SavedTensorMeter

    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 7, 8, generator=g, requires_grad=True)
    w1, w2, w3 = (torch.randn(12, 8, generator=g), torch.randn(12, 8, generator=g),
                  torch.randn(8, 12, generator=g))
    with SavedTensorMeter(exclude=[w1, w2, w3]) as meter:
        if kind == "relu":
            y = PrunedReluFunction.apply(x, w1, None, w3, None, 5)
        else:
            fn = PrunedSwiGLUFunction if kind == "swiglu" else PrunedGeGLUFunction
            y = fn.apply(x, w1, w2, w3, None, None, None, 5)
    per_channel = 1 if kind == "relu" else 2
    assert meter.bytes == per_channel * 21 * 5 * 4 + 5 * 8
    keys = {t.untyped_storage().data_ptr() for t in y.grad_fn.saved_tensors}
    assert x.untyped_storage().data_ptr() not in keys
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert gx.shape == x.shape


def test_s2_attention_matches_per_group_reference():
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 4, 32, 8, generator=g) for _ in range(3))
    out = s2_attention(q, k, v, groups=4, scale=0.3)
    ref = torch.empty_like(out)
    for head in range(4):
        shift = 4 if head >= 2 else 0  # group 8, shifted heads rolled by half a group
        perm = (torch.arange(32) + shift) % 32  # position p of the rolled seq holds token perm[p]
        for grp in range(4):
            p = perm[grp * 8:(grp + 1) * 8]
            att = (q[0, head, p] @ k[0, head, p].t() * 0.3)
            att = att.masked_fill(~torch.ones(8, 8, dtype=torch.bool).tril(), float("-inf"))
            ref[0, head, p] = att.softmax(-1) @ v[0, head, p]
    assert torch.allclose(out, ref, atol=1e-5)


def test_predictor_learns_and_elastic_size_shrinks():
    torch.manual_seed(0)
    target = PatternPredictor(32, 4, block_size=B, hidden=16, out_dim=8)
    data = []
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(1, 128, 32)
            data.append((x, target.tiles(x).clamp_min(0)))
    pred = PatternPredictor(32, 4, block_size=B, hidden=32, out_dim=8)
    first = F.smooth_l1_loss(pred.tiles(data[0][0]), data[0][1]).item()
    log = train_predictor(pred, data, steps=120, lr=3e-3, prune_every=40, prune_until=80,
                          dead_threshold=0.5)
    after = F.smooth_l1_loss(pred.tiles(data[0][0]), data[0][1]).item()
    assert after < first
    assert len(log["sizes"]) == 2
    # units dead on > 50% of inputs are removed at steps 40 and 80 (ReLU units on random
    # inputs die often, so the 32-unit nets shrink); the log records the nets' real sizes,
    # sizes never grow, and the predictor still runs at its new size
    (s1, q1, k1), (s2, q2, k2) = log["sizes"]
    assert (s1, s2) == (40, 80) and q1 < 32 and k1 < 32
    assert q2 <= q1 and k2 <= k1 and (q2, k2) == (pred.q_net.hidden, pred.k_net.hidden)
    assert pred.key_scores(data[0][0]).shape == (1, 8)


def test_non_causal_predictors_fit_and_score_every_tile(monkeypatch):
    """causal_scores=false with scorer=predictor: the predictors are fitted to the full exact
    tile matrix, the layers score with non-causal column sums, and recall compares like with
    like."""
    from lemo.config import PredictorConfig
    from lemo.predictor import capture_scores, fit_predictors, predictor_recall

    torch.manual_seed(0)
    m = tiny()
    cfg = LemoConfig.paper(keep_ratio=0.5, block_size=B, causal_scores=False, mlp_prune_ratio=0.0)
    apply_lemo(m, cfg)
    batches = [torch.randint(0, 256, (1, 4 * B)) for _ in range(2)]
    fit_predictors(m, batches, PredictorConfig(hidden=8, out_dim=8, steps=30, lr=1e-2,
                                               prune_every=0))
    layer = next(la for la in lemo_layers(m) if la.predictor is not None)
    x, exact = capture_scores(m, batches[:1])[layer.layer_idx][0]
    assert exact.triu(1).abs().sum() > 0  # the targets include tiles above the diagonal
    data = capture_scores(m, batches)[layer.layer_idx]
    err = {}
    for causal in (True, False):  # fitted as causal, a predictor cannot match the upper tiles
        torch.manual_seed(1)
        pred = PatternPredictor(32, 4, block_size=B, hidden=8, out_dim=8)
        train_predictor(pred, data, steps=60, lr=1e-2, prune_every=0, causal=causal)
        with torch.no_grad():
            err[causal] = F.smooth_l1_loss(pred.tiles(x, causal=False), exact).item()
    assert err[False] < err[True]
    seen = []
    real = PatternPredictor.key_scores
    monkeypatch.setattr(PatternPredictor, "key_scores",
                        lambda self, x, reduce="sum", causal=True: seen.append(causal)
                        or real(self, x, reduce, causal))
    configure_lemo(m, LemoConfig(**{**cfg.__dict__, "scorer": "predictor"}))
    m.train()
    causal_lm_loss(m, batches[0], segment=32).backward()
    assert seen and not any(seen)  # every eliminating layer scored non-causally
    assert 0.0 <= predictor_recall(m, batches) <= 1.0


def test_elastic_prune_removes_exactly_the_dead_units():
    from lemo.predictor import BlockMLP
    net = BlockMLP(4, 3, 2)
    with torch.no_grad():
        net.fc1.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1, -1, -1, -1], [0, 1, 0, 0]]))
    x = torch.rand(10, 4) + 0.1  # unit 1 is always <= 0
    before = net(x)
    assert net.prune(0.8) == 1 and net.hidden == 2
    assert torch.allclose(net(x), before, atol=1e-6)  # dead ReLU unit contributed nothing


def test_gradient_checkpointing_keeps_gradients(monkeypatch):
    """Checkpointing keeps LeMo's gradients; HF forwards `set_checkpointing`'s context_fn, so the
    pruned MLPs rank channels only in the recomputation (once per layer, as without it)."""
    from lemo import mlp

    ranked = []
    real = mlp.top_channels
    monkeypatch.setattr(mlp, "top_channels", lambda s, n: ranked.append(n) or real(s, n))
    x = torch.randint(0, 256, (1, 64))
    m = add_lora(tiny(), LoraConfig())
    for n, p in m.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    apply_lemo(m, LemoConfig(keep_ratio=0.5, block_size=B, mlp_prune_ratio=0.5))
    causal_lm_loss(m, x, segment=32).backward()
    per_step = len(ranked)
    assert per_step > 0
    g0 = grads(m)
    m.zero_grad()
    set_checkpointing(m, True)
    ranked.clear()
    with SavedTensorMeter(exclude=list(m.parameters())) as meter:
        loss = causal_lm_loss(m, x, segment=32)
    assert ranked == []  # the checkpoints' first forwards rank nothing
    loss.backward()
    assert len(ranked) == per_step
    g1 = grads(m)
    assert meter.bytes > 0 and g0.keys() == g1.keys()
    for n in g0:
        assert torch.allclose(g0[n], g1[n], atol=1e-5), n


def test_eval_runs_dense_unless_asked():
    m = tiny()
    x = torch.randint(0, 256, (1, 64))
    m.eval()
    with torch.no_grad():
        ref = m(input_ids=x).logits
        apply_lemo(m, LemoConfig(keep_ratio=0.25, block_size=B))
        assert torch.allclose(m(input_ids=x).logits, ref, atol=1e-5)
        configure_lemo(m, LemoConfig(keep_ratio=0.25, block_size=B, eliminate_in_eval=True))
        assert not torch.allclose(m(input_ids=x).logits, ref, atol=1e-3)


def test_threshold_tuning_starts_at_mean_and_respects_tolerance():
    from lemo.threshold import tune_thresholds
    m = tiny()
    apply_lemo(m, LemoConfig(block_size=B))
    batches = [torch.randint(0, 256, (1, 128)) for _ in range(2)]
    thr, log = tune_thresholds(m, batches, LemoConfig(block_size=B), tol=0.02)
    elim = [layer.layer_idx for layer in lemo_layers(m) if layer.eliminating]
    assert elim == [2]
    assert log["start"][2] > 0 and thr[2] >= log["start"][2]
    assert log["loss"] <= log["dense_loss"] * 1.02 + 1e-6
    assert m.training  # restored


def test_opt_post_layernorm_keep_ratio_one_is_dense():
    """OPT-350m style (layer norm after the residual add) also runs through the LeMo layer."""
    from transformers import AutoModelForCausalLM, OPTConfig

    torch.manual_seed(0)
    cfg = OPTConfig(vocab_size=256, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                    ffn_dim=64, dropout=0.0, attention_dropout=0.0, do_layer_norm_before=False,
                    word_embed_proj_dim=32, max_position_embeddings=256)
    m = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").train()
    x = torch.randint(0, 256, (1, 64))
    ref = causal_lm_loss(m, x, segment=0)
    apply_lemo(m, LemoConfig(keep_ratio=1.0, block_size=B, dense_first=0.0, dense_last=False,
                             mlp_prune_ratio=0.0))
    assert torch.allclose(causal_lm_loss(m, x, segment=32), ref, atol=1e-5)
    configure_lemo(m, LemoConfig(keep_ratio=0.5, block_size=B, dense_first=0.0, dense_last=False,
                                 mlp_prune_ratio=0.0))
    assert torch.isfinite(causal_lm_loss(m, x, segment=32))


def test_what_lemo_would_get_wrong_is_refused():
    """The S2-Attn baseline on sliding-window attention (it attends within its groups only; the
    eliminating layers honour the window) and a layer policy under which no layer of the model
    eliminates (LeMo would be plain LoRA)."""
    from lemo.patch import apply_lemo as apply
    from shared.errors import ConfigError

    m = build_model(ModelConfig(arch="mistral", hidden_size=32, num_layers=4, num_heads=4,
                                num_kv_heads=2, intermediate_size=64))
    m.config.sliding_window = 8
    with pytest.raises(ConfigError, match="S2-Attn does not implement this model's sliding "
                                          "window \\(8\\)"):
        apply(m, LemoConfig(block_size=B, attention="s2"))
    apply(m, LemoConfig(block_size=B))  # eliminating layers apply the window
    m.config.sliding_window = None
    apply(m, LemoConfig(block_size=B, attention="s2"))  # full attention: fine
    two = build_model(ModelConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
                                  intermediate_size=64))
    with pytest.raises(ConfigError, match="no layer of this 2-layer model eliminates"):
        apply(two, LemoConfig(block_size=B))
    layers = apply(two, LemoConfig(block_size=B, dense_first=0.0))
    assert [x.eliminating for x in layers] == [True, False]
    apply(two, LemoConfig(enabled=False))  # plain LoRA through the same layers: fine


def test_segment_loss_applies_final_logit_softcapping():
    """Any model whose config sets final_logit_softcapping: the segmented loss soft-caps as the
    full-logit reference does (and it matters: the uncapped loss differs)."""
    g = torch.Generator().manual_seed(4)
    h = torch.randn(2, 40, 16, generator=g, requires_grad=True)
    w = torch.randn(256, 16, generator=g, requires_grad=True)
    y = torch.randint(0, 256, (2, 40), generator=g)
    from lemo import kernels
    from lemo.loss import shift_labels
    ref = full_lm_loss(h, w, y, softcap=2.0)
    assert abs(float(ref) - float(full_lm_loss(h, w, y))) > 0.1
    seg = kernels.segmented_lm_loss(h, w, shift_labels(y), 16, softcap=2.0)
    assert torch.allclose(ref, seg, atol=1e-6)
    for a, b in zip(torch.autograd.grad(ref, (h, w)), torch.autograd.grad(seg, (h, w))):
        assert torch.allclose(a, b, atol=1e-6)


def test_clipped_step_clips_steps_and_refuses_a_non_finite_loss():
    from lemo.finetune import clipped_step
    from shared.errors import DataError

    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=1.0)
    clipped_step((w * torch.tensor([30.0, 40.0, 0.0])).sum(), opt, [w], 0, "{loss}")
    torch.testing.assert_close(w.detach(), torch.tensor([-0.6, -0.8, 0.0]))  # gradient norm 50 -> 1
    before = w.detach().clone()
    with pytest.raises(DataError, match=r"loss is nan at step 7 \(lower lr\)"):
        clipped_step(w.sum() * float("nan"), opt, [w], 7,
                     "loss is {loss} at step {step} (lower lr)")
    assert torch.equal(w.detach(), before)


def test_segment_normed_hidden_equals_the_decoder_output_and_runs_the_norm_blockwise():
    """The final norm applied per row block = the decoder's own output (forward and input-
    embedding gradients); its backward sees blocks of at most `segment` rows; the model's norm
    is back in place afterwards, also when the decoder raises."""
    from lemo.loss import segment_normed_hidden
    m = tiny()
    x = torch.randint(0, 256, (2, 40))
    decoder = m.model
    ref = decoder(input_ids=x).last_hidden_state
    (g_ref,) = torch.autograd.grad(ref.square().sum(), decoder.embed_tokens.weight)
    rows = []
    hook = decoder.norm.register_full_backward_hook(
        lambda mod, gin, gout: rows.append(gout[0].shape[0]))
    out = segment_normed_hidden(decoder, x, 24)
    (g,) = torch.autograd.grad(out.square().sum(), decoder.embed_tokens.weight)
    hook.remove()
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(g, g_ref, atol=1e-5)
    assert rows and max(rows) <= 24 and sum(rows) == x.numel()  # 80 rows in blocks of 24
    assert not isinstance(decoder.norm, torch.nn.Identity)
    with pytest.raises(IndexError):
        segment_normed_hidden(decoder, torch.full((1, 40), 10_000), 8)  # id beyond the vocab
    assert not isinstance(decoder.norm, torch.nn.Identity)
    # one block: the decoder's own forward
    assert torch.allclose(segment_normed_hidden(decoder, x, 80), ref, atol=1e-6)
    # the segmented loss runs the final norm blockwise too
    rows.clear()
    hook = decoder.norm.register_full_backward_hook(
        lambda mod, gin, gout: rows.append(gout[0].shape[0]))
    causal_lm_loss(m, x, segment=16).backward()
    hook.remove()
    assert rows and max(rows) <= 16 and sum(rows) == x.numel()


def test_segment_normed_hidden_without_a_norm_module_is_the_decoder_output():
    from types import SimpleNamespace

    from lemo.loss import segment_normed_hidden

    class NoNorm(torch.nn.Module):  # a decoder whose final norm has another name (OPT's)
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 8)
            self.final_layer_norm = torch.nn.LayerNorm(8)

        def forward(self, input_ids):
            return SimpleNamespace(last_hidden_state=self.final_layer_norm(self.emb(input_ids)))

    d = NoNorm()
    x = torch.randint(0, 50, (2, 30))
    out = segment_normed_hidden(d, x, 8)
    assert torch.equal(out, d(x).last_hidden_state)
    assert isinstance(d.final_layer_norm, torch.nn.LayerNorm) and not hasattr(d, "norm")
