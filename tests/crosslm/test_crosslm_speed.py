"""The device-speed rewrites compute what the obvious versions compute: the sync-free token
draw equals torch.multinomial with the same generator, the unpacked BiLSTM equals a packed
bidirectional LSTM, train_slm with the data on the device once equals a per-batch transfer
loop, no query set is sampled after the last round, and the bench's `before` metrics need no
arm. The device bench writes each arm as it finishes and summarises what finished."""

import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crosslm.generation import _draw, _exponentials, top_p_filter
from crosslm.models import ByteBiLSTM, build_slm, byte_features
from crosslm.slm import train_slm


def test_token_draw_equals_multinomial_with_the_same_generator():
    torch.manual_seed(0)
    steps, b, V = 12, 5, 40
    logits = [torch.randn(b, V) * 2 for _ in range(steps)]
    g = torch.Generator().manual_seed(7)
    ref = []
    for lg in logits:  # the obvious version: nucleus filter, softmax, multinomial per step
        lg = lg.clone()
        lg[:, 30:] = float("-inf")
        p = torch.softmax(top_p_filter(lg / 0.8, 0.9), -1)
        ref.append(torch.multinomial(p, 1, generator=g))
    q = _exponentials(torch.Generator().manual_seed(7), steps, b, V, torch.device("cpu"))
    got = [_draw(lg.clone(), 30, 0.8, 0.9, q[t]) for t, lg in enumerate(logits)]
    assert all(torch.equal(r, x) for r, x in zip(ref, got))
    assert max(int(x.max()) for x in got) < 30


class PackedBiLSTM(nn.Module):
    """The packed bidirectional LSTM that ByteBiLSTM stands in for (same init order)."""

    def __init__(self, num_classes, emb=32, hidden=48):
        super().__init__()
        self.emb = nn.Embedding(257, emb, padding_idx=256)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, num_classes)

    def forward(self, ids):
        lengths = (ids != 256).sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.emb(ids), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        h, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, padding_value=-1e4,
                                                total_length=ids.shape[1])
        return self.out(h.amax(1))


def test_unpacked_bilstm_equals_the_packed_one_in_value_and_gradient():
    torch.manual_seed(3)
    ref = PackedBiLSTM(4)
    torch.manual_seed(3)
    new = ByteBiLSTM(4)
    for a, b in zip(ref.parameters(), new.parameters()):  # same initial weights
        assert torch.equal(a, b)
    x = byte_features(["", "a", "hello world", "x" * 50, "tab\tand more text"], 40)
    ya, yb = ref(x), new(x)
    assert torch.allclose(ya, yb, atol=1e-5)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for a, b in zip(ref.parameters(), new.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_weights_saved_from_the_packed_layout_load_and_give_its_outputs():
    torch.manual_seed(5)
    ref = PackedBiLSTM(3)
    torch.manual_seed(6)  # other initial weights: only the load can make them equal
    new = ByteBiLSTM(3)
    new.load_state_dict(ref.state_dict())  # strict: every packed key finds its place
    x = byte_features(["", "b", "some text", "y" * 30], 32)
    assert torch.allclose(ref(x), new(x), atol=1e-5)
    assert torch.equal(new.bwd.weight_hh_l0, ref.lstm.weight_hh_l0_reverse)


def _train_per_batch_transfer(model, x, targets, weights, epochs, lr, batch, seed):
    """The obvious loop: index on the host, move each batch to the model's device."""
    gen = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            b = order[i:i + batch]
            logp = F.log_softmax(model(x[b].to(dev)), dim=-1)
            ce = -(targets[b].to(dev) * logp).sum(-1)
            wb = weights[b].to(dev)
            loss = (wb * ce).sum() / wb.sum().clamp(min=1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def test_train_slm_equals_the_per_batch_transfer_loop():
    x = byte_features([f"text number {i} " * (1 + i % 3) for i in range(37)], 48)
    y = torch.eye(3)[torch.arange(37) % 3]
    w = torch.linspace(0.5, 1.5, 37)
    for kind in ("cnn", "bilstm"):
        torch.manual_seed(0)
        a = build_slm(kind, 3)
        torch.manual_seed(0)
        b = build_slm(kind, 3)
        train_slm(a, x, y, w, 3, 3e-3, 8, seed=5)
        _train_per_batch_transfer(b, x, y, w, 3, 3e-3, 8, seed=5)
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb), kind


def test_no_query_is_sampled_after_the_last_round(tiny_setup, tiny_cfg, monkeypatch):
    """Two rounds sample two query sets; the LLM and the SLMs end where a run with a third
    round to come (which samples a third query set) is after its second round."""
    import dataclasses

    import crosslm.federation as fed_mod
    from crosslm.pipeline import client_metrics, make_arm
    from shared.fl import run_rounds

    calls = []
    sample = fed_mod.sample_label_conditioned
    monkeypatch.setattr(fed_mod, "sample_label_conditioned",
                        lambda *a, **k: calls.append(1) or sample(*a, **k))
    ends = []
    for rounds in (2, 3):
        cfg = dataclasses.replace(tiny_cfg, fl=dataclasses.replace(tiny_cfg.fl, rounds=rounds))
        calls.clear()
        strategy, client = make_arm(tiny_setup, "crosslm", cfg)
        private: dict = {}
        run_rounds(strategy, client, list(range(cfg.data.num_clients)), 2, private)
        ends.append((len(calls), client_metrics(client, private),
                     {k: v.clone() for k, v in strategy.llm.named_parameters()
                      if v.requires_grad}))
    assert ends[0][0] == 2 and ends[1][0] == 3
    assert ends[0][1] == ends[1][1]
    assert all(torch.equal(ends[0][2][k], ends[1][2][k]) for k in ends[0][2])


def test_before_metrics_need_no_arm(tiny_setup, tiny_cfg):
    from crosslm.pipeline import llm_metrics, llm_metrics_before, make_arm

    s, _ = make_arm(tiny_setup, "kd", tiny_cfg)
    assert llm_metrics_before(tiny_setup, tiny_cfg) == llm_metrics(
        tiny_setup, s.llm, s.prompts, 0, tiny_cfg.gen.per_label)


def test_device_worker_writes_each_arm_and_the_summary_reads_them(tiny_cfg, tmp_path):
    from crosslm.bench import BenchConfig
    from crosslm.experiments.device_bench import read_rows, report, summarise, work
    from shared.config import to_dict

    cfg = BenchConfig(**{f: getattr(tiny_cfg, f) for f in to_dict(tiny_cfg)
                         if f in BenchConfig.__dataclass_fields__})
    cfg.tasks, cfg.seeds, cfg.arms = ["docs-binary"], [1], ["standalone", "kd"]
    cfg.fl.rounds = 1
    work(cfg, [("docs-binary", 1)], tmp_path)
    lines = (tmp_path / "docs-binary-s1.jsonl").read_text().splitlines()
    assert [json.loads(ln)["arm"] for ln in lines] == ["standalone", "centralised", "kd"]
    rows = read_rows(tmp_path, cfg.tasks, [1, 2])  # seed 2 never ran
    text = summarise(rows, BenchConfig(tasks=cfg.tasks, seeds=[1, 2], arms=cfg.arms))
    assert "docs-binary-s2/kd" in text and "docs-binary-s1/kd" not in text
    kd = rows["docs-binary"][1]["kd"]
    assert 0 <= kd["fidelity_before"] <= 1 and np.isfinite(kd["perplexity_after"])
    report(rows, cfg, tmp_path, ["device_bench"])
    names = [c["name"] for c in json.loads((tmp_path / "bench.json").read_text())["checks"]]
    assert not any("KD" in n for n in names)  # no crosslm row: the arm checks are skipped
