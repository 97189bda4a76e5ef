"""The contrastive loss against a slow loop-by-loop reference, its intra-video term, and the
batch sampler's positives."""

import math

import numpy as np
import torch

from bestshot.contrastive import TrainData, contrastive_loss, sample_batch, soft_cross_entropy


def _slow_soft_ce(logits, pos):
    rows = []
    for i in range(logits.shape[0]):
        p = [j for j in range(logits.shape[1]) if pos[i][j]]
        if not p:
            continue
        z = [float(x) for x in logits[i]]
        m = max(z)
        lse = m + math.log(sum(math.exp(x - m) for x in z))
        rows.append(-sum(z[j] - lse for j in p) / len(p))
    return sum(rows) / len(rows)


def test_soft_cross_entropy_matches_the_slow_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g) * 3
    pos = torch.rand(6, 5, generator=g) < 0.4
    pos[2] = False  # a row without positives is left out
    assert abs(float(soft_cross_entropy(logits, pos)) - _slow_soft_ce(logits, pos)) < 1e-5
    one_hot = torch.eye(5, dtype=torch.bool)
    assert torch.allclose(soft_cross_entropy(logits[:5], one_hot),
                          torch.nn.functional.cross_entropy(logits[:5], torch.arange(5)))


def test_intra_video_term_only_sees_frames_of_the_same_video():
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    video = torch.tensor([0, 0, 0, 1, 1, 1])
    pos = torch.eye(6, dtype=torch.bool)
    scale = torch.tensor(10.0)
    _, parts = contrastive_loss(img, txt, pos, video, scale)
    logits = scale * txt @ img.t()
    ref = np.mean([_slow_soft_ce(logits[v * 3:(v + 1) * 3, v * 3:(v + 1) * 3],
                                 pos[v * 3:(v + 1) * 3, v * 3:(v + 1) * 3]) for v in (0, 1)])
    assert abs(parts["intra"] - ref) < 1e-5
    # a frame of another video, however similar, does not change the intra-video term
    img2 = img.clone()
    img2[3] = img[0]
    _, parts2 = contrastive_loss(img2, txt, pos, video, scale)
    ref0 = _slow_soft_ce(logits[:3, :3], pos[:3, :3])
    assert parts2["intra"] != parts["intra"]  # video 1 changed ...
    l2 = scale * txt @ img2.t()
    assert abs(parts2["intra"] - (ref0 + _slow_soft_ce(l2[3:, 3:], pos[3:, 3:])) / 2) < 1e-5


def test_sampled_positives_follow_caption_keys_and_visual_only_captions():
    n, t = 3, 6
    keys = np.arange(n * t).reshape(n, t) // 2  # pairs of frames share a clean caption
    texts = [f"c{k}" for k in range(n * t // 2)] + ["visual"]
    caption_ids = np.concatenate([keys[..., None], np.full((n, t, 1), len(texts) - 1)], axis=2)
    data = TrainData(pixels=np.zeros((n, t, 1, 2, 2), np.float16), caption_ids=caption_ids,
                     keys=keys, text_emb=np.zeros((len(texts), 4)), texts=texts,
                     visual_only=np.array([False] * (len(texts) - 1) + [True]),
                     caption_keys=np.r_[np.arange(len(texts) - 1), -1])
    data.validate()
    for seed in range(5):
        b = sample_batch(data, 2, 4, np.random.default_rng(seed))
        assert b["x"].shape == (8, 1, 2, 2) and len(set(b["video"])) == 2
        fk = keys[b["video"], b["frames"]]
        vis = data.visual_only[b["tid"]]
        # a clean caption is positive exactly for the frames with its key ...
        np.testing.assert_array_equal(b["pos"][~vis],
                                      data.caption_keys[b["tid"][~vis]][:, None] == fk[None])
        # ... a visual-only caption for every frame of its own video
        np.testing.assert_array_equal(b["pos"][vis],
                                      b["video"][vis][:, None] == b["video"][None])
