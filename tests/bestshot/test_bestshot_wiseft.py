"""WiSE-FT weight averaging against a parameter-by-parameter reference, its end points, the
validation-only choice of alpha against brute force, retention R@1's galleries (perfect and
chance encoders), the bench options' bad input, and the
L2-SP penalty (a slow sum; it keeps fine-tuning closer to its start)."""

import copy

import numpy as np
import pytest
import torch

from bestshot.config import BenchConfig, ModelConfig
from bestshot.contrastive import TrainData, fit, l2sp_penalty
from bestshot.models import ShotVL
from bestshot.retrieval import retention_r1
from bestshot.wiseft import select_alpha, weight_average
from shared.config import load_config
from shared.errors import ConfigError

TINY = ModelConfig(image_size=32, hidden=32, embed_dim=16)


def _pair():
    torch.manual_seed(0)
    base = ShotVL(TINY).eval()
    torch.manual_seed(1)
    ft = ShotVL(TINY).eval()
    return base, ft


def test_weight_average_is_the_straight_line_between_the_two_models():
    base, ft = _pair()
    mid = weight_average(base, ft, 0.25).state_dict()
    sb, sf = base.state_dict(), ft.state_dict()
    for name in sf:  # slow reference: one tensor at a time, in float64
        want = 0.75 * sb[name].double() + 0.25 * sf[name].double()
        np.testing.assert_allclose(mid[name].double().numpy(), want.numpy(), atol=1e-6,
                                   err_msg=name)
    assert any(not torch.equal(sb[n], sf[n]) for n in sf)  # the two models do differ


def test_weight_average_end_points_encode_like_the_two_models():
    base, ft = _pair()
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for alpha, ref in ((0.0, base), (1.0, ft)):
        m = weight_average(base, ft, alpha)
        np.testing.assert_allclose(m.encode_frames(frames), ref.encode_frames(frames),
                                   atol=1e-6)
    before = {k: v.clone() for k, v in ft.state_dict().items()}
    weight_average(base, ft, 0.5)
    assert all(torch.equal(before[k], v) for k, v in ft.state_dict().items())  # inputs kept


def test_weight_average_rejects_bad_alpha_and_other_architectures():
    base, ft = _pair()
    with pytest.raises(ValueError, match="alpha must be in"):
        weight_average(base, ft, 1.5)
    with pytest.raises(ValueError, match="one ModelConfig"):
        weight_average(base, ShotVL(ModelConfig(image_size=32, hidden=32, embed_dim=8)), 0.5)


def test_select_alpha_is_the_best_hit1_within_the_retention_budget():
    rng = np.random.default_rng(3)
    for _ in range(100):
        alphas = sorted(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=4, replace=False))
        curve = {float(a): {"hit1": float(rng.integers(0, 4)) / 4,
                            "retention_r1": float(rng.integers(0, 8)) / 20} for a in alphas}
        base = float(rng.integers(0, 8)) / 20
        ok = [a for a in alphas if curve[a]["retention_r1"] >= base - 0.05]
        if ok:  # brute force: best hit1 inside the budget, the smallest such alpha
            best = max(curve[a]["hit1"] for a in ok)
            want = min(a for a in ok if curve[a]["hit1"] == best)
        else:
            top = max(m["retention_r1"] for m in curve.values())
            want = min(a for a in alphas if curve[a]["retention_r1"] == top)
        assert select_alpha(curve, base, 0.05) == want
    curve = {0.0: {"hit1": 0.1, "retention_r1": 0.30}, 0.5: {"hit1": 0.3, "retention_r1": 0.29},
             1.0: {"hit1": 0.4, "retention_r1": 0.20}}
    assert select_alpha(curve, 0.30, 0.02) == 0.5
    assert select_alpha(curve, 0.30, 0.2) == 1.0
    with pytest.raises(ValueError, match="empty"):
        select_alpha({}, 0.3)


class OneHot:
    """A dual encoder whose frame and text embeddings are one-hot codes of the clip's text."""

    def __init__(self, vocab, noise=0.0, seed=0):
        self.vocab, self.noise, self.rng = vocab, noise, np.random.default_rng(seed)

    def encode_texts(self, texts):
        return np.eye(len(self.vocab))[[self.vocab.index(t) for t in texts]]

    def encode_frames(self, frames):  # frames: (T, 1) the clip's text id, repeated
        e = np.eye(len(self.vocab))[frames[:, 0]]
        return e + self.noise * self.rng.normal(size=e.shape)


def test_retention_r1_galleries_set_the_difficulty():
    n = 64
    vocab = [f"v{i}" for i in range(n)]
    frames = np.repeat(np.arange(n)[:, None, None], 3, axis=1)  # (N, T=3, 1)
    assert retention_r1(OneHot(vocab), frames, vocab, gallery=8) == 1.0
    chance = OneHot(vocab, noise=1e3)  # embeddings swamped by noise: R@1 = 1 / gallery
    emb = [chance.encode_frames(f) for f in frames]
    for g in (4, 16):
        r = retention_r1(chance, frames, vocab, frame_emb=emb, draws=200, gallery=g)
        assert abs(r - 1 / g) < 0.03, (g, r)
    whole = retention_r1(chance, frames, vocab, frame_emb=emb, draws=20)
    assert whole == retention_r1(chance, frames, vocab, frame_emb=emb, draws=20, gallery=n)


@pytest.mark.parametrize("override,msg", [("wise_alphas=[]", "wise_alphas"),
                                          ("wise_alphas=[0.5,1.5]", "wise_alphas")])
def test_bench_wise_alphas_are_checked(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(None, BenchConfig, [override])


def _tiny_data(seed=0, n=3, t=4):
    from bestshot.models import TEXT_DIM

    rng = np.random.default_rng(seed)
    keys = np.arange(n * t).reshape(n, t)
    texts = [f"c{k}" for k in range(n * t)]
    return TrainData(pixels=rng.normal(size=(n, t, 6, 32, 32)).astype(np.float16),
                     caption_ids=keys[..., None], keys=keys,
                     text_emb=rng.normal(size=(len(texts), TEXT_DIM)).astype(np.float32),
                     texts=texts, visual_only=np.zeros(len(texts), bool),
                     caption_keys=np.arange(len(texts)))


def test_l2sp_penalty_matches_a_slow_sum_and_is_zero_at_the_anchor():
    base, ft = _pair()
    anchor = {k: p.detach().clone() for k, p in base.named_parameters()}
    assert float(l2sp_penalty(base, anchor).detach()) == 0.0
    slow = 0.0
    for name, p in ft.named_parameters():
        slow += float(((p.detach().double() - anchor[name].double()) ** 2).sum())
    assert float(l2sp_penalty(ft, anchor).detach()) == pytest.approx(slow, rel=1e-5)


def test_l2sp_keeps_fine_tuning_near_its_start():
    data = _tiny_data()
    dist = {}
    for weight in (0.0, 10.0):
        base, _ = _pair()
        model = copy.deepcopy(base)
        anchor = {k: p.detach().clone() for k, p in model.named_parameters()}
        fit(model, data, steps=8, videos=2, frames=3, lr=5e-3, weight_decay=0.0,
            intra_weight=1.0, seed=0, l2sp=weight, anchor=anchor)
        dist[weight] = float(l2sp_penalty(model, anchor).detach())
    assert 0 < dist[10.0] < 0.5 * dist[0.0]
