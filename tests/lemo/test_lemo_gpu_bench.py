"""`python -m lemo.gpu_bench`: the harness on a tiny model on the CPU (every arm runs a real
training step through the public lemo API), its config errors, and the FLOP count."""

from __future__ import annotations

import json

import pytest
import torch

from lemo.gpu_bench import ARMS, GpuModelConfig, arm_setup, dense_flops, main
from shared.cli import run

TINY = """
device: cpu
model: {arch: llama, hidden_size: 64, num_layers: 4, num_heads: 4, num_kv_heads: 2,
        intermediate_size: 128, vocab_size: 300, dtype: float32}
seq_lens: [256]
arms: [lora, lora_segment, lora_ckpt, longlora_s2, lemo_attn, lemo_full, lemo_full_ckpt,
       lemo_full_exact]
warmup: 1
repeats: 2
segment: 128
predictor_hidden: 16
search_arms: [lora]
search_step: 128
search_max: 512
micro: false
profile: [lemo_full@256]
"""


def _write(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_gpu_bench_tiny_cpu_all_arms(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "out"
    assert main(["--config", _write(tmp_path, TINY), "--out", str(out)]) == 0
    data = json.loads((out / "bench.json").read_text())
    rows = {(r["arm"], r["setting"]): r for r in data["rows"]}
    for arm in ARMS:
        r = rows[(arm, "256")]
        assert r["status"] == "ok" and r["step_s"] > 0 and r["tflops"] > 0
    assert data["longest"]["lora"]["longest"] == 512  # capped search: never OOM on CPU
    assert data["command"].startswith("python -m lemo.gpu_bench ")
    assert (out / "bench.png").is_file() and (out / "bench.md").is_file()
    assert "## Memory and step time" in (out / "details.md").read_text()
    prof = data["profile"][0]
    assert prof["arm"] == "lemo_full" and prof["kernels_ms"] >= 0 and prof["wall_ms"] > 0
    assert data["predictor_params"] > 0


def _policy(c) -> tuple:
    return (c.keep_ratio, c.selection, c.score_reduce, c.causal_scores, c.sink_blocks,
            c.local_blocks)


def test_arm_table_matches_the_paper_setups():
    from lemo.config import LemoConfig
    from lemo.gpu_bench import GpuBenchConfig

    cfg = GpuBenchConfig()
    lora, seg, ckpt = arm_setup("lora", cfg)
    assert not lora.enabled and seg == 0 and not ckpt
    full, seg, ckpt = arm_setup("lemo_full_ckpt", cfg)
    # the LeMo arms run the library's default selection and pruning (LemoConfig's defaults)
    default = LemoConfig()
    assert full.enabled and _policy(full) == _policy(default)
    assert full.mlp_prune_ratio == default.mlp_prune_ratio == 0.5
    assert seg == 2048 and ckpt
    attn, _, _ = arm_setup("lemo_attn", cfg)
    assert _policy(attn) == _policy(default) and attn.mlp_prune_ratio == 0.0
    s2, seg, _ = arm_setup("longlora_s2", cfg)
    assert s2.attention == "s2" and s2.s2_groups == 4 and seg == 0
    assert s2.mlp_prune_ratio == 0.0  # the baseline does not inherit LeMo's MLP pruning


@pytest.mark.parametrize("name, paper, kept_channels", [("gpu_llama.yaml", False, 2816),
                                                         ("gpu_llama_paper.yaml", True, 1128),
                                                         ("gpu_opt.yaml", True, 1640)])
def test_gpu_configs_are_the_default_and_the_paper_setting(name, paper, kept_channels):
    """gpu_llama.yaml benches the library's default, gpu_llama_paper.yaml and gpu_opt.yaml the
    paper's AE setting (the records in results/lemo_gpu and results/lemo_gpu/opt); each keeps a
    multiple of 8 MLP channels."""
    from pathlib import Path

    from lemo.config import LemoConfig
    from lemo.gpu_bench import GpuBenchConfig
    from shared.config import load_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(str(root / "configs" / "lemo" / name), GpuBenchConfig)
    full, _, _ = arm_setup("lemo_full", cfg)
    ref = LemoConfig.paper() if paper else LemoConfig()
    assert _policy(full) == _policy(ref)
    assert abs(full.mlp_prune_ratio - ref.mlp_prune_ratio) < 1e-3
    kept = round((1 - full.mlp_prune_ratio) * cfg.model.intermediate_size)
    assert kept % 8 == 0 and kept == kept_channels


def test_dense_flops_closed_form():
    mc = GpuModelConfig(hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=1,
                        intermediate_size=16, vocab_size=10)
    # linear params: q,o 2·64, k,v 2·8·4, mlp 3·8·16, head 10·8 = 128 + 64 + 384 + 80 = 656
    s = 4
    assert dense_flops(mc, s) == 2 * (2 * s * 656) + 3 * (2 * s * s * 8)


@pytest.mark.parametrize("bad, msg", [
    ("arms: [lora, nope]", "unknown arm"),
    ("arms: [lemo_full]", "baseline 'lora'"),
    ("seq_lens: [1000]", "multiples of 128"),
    ("warmpu: 3", "warmpu"),
    ("profile: [lora-4096]", "arm@length"),
])
def test_gpu_bench_bad_config(tmp_path, capsys, bad, msg):
    cfg = _write(tmp_path, "device: cpu\nmicro: false\n" + bad + "\n")
    with pytest.raises(SystemExit) as e:
        run(main, ["--config", cfg, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "o" / "bench.json").exists()


def test_gpu_bench_micro_needs_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    cfg = _write(tmp_path, "device: cpu\nmicro: true\n")
    with pytest.raises(SystemExit) as e:
        run(main, ["--config", cfg, "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "CUDA" in capsys.readouterr().err


def test_analyse_trace_finds_peak_and_live_sites():
    from lemo.gpu_bench import analyse_trace

    def fr(name):
        return [{"filename": "/x/torch/nn/f.py", "line": 1, "name": "inner"},
                {"filename": f"/w/lemo/{name}.py", "line": 7, "name": name}]

    trace = [
        {"action": "alloc", "addr": 1, "size": 100, "frames": fr("saved")},
        {"action": "alloc", "addr": 2, "size": 50, "frames": fr("temp")},
        {"action": "free_requested", "addr": 2, "size": 50},
        {"action": "free_completed", "addr": 2, "size": 50},
        {"action": "alloc", "addr": 3, "size": 80, "frames": fr("spike")},  # 180: the peak
        {"action": "free_requested", "addr": 3, "size": 80},
        {"action": "alloc", "addr": 4, "size": 60, "frames": fr("late")},  # 160 < 180
    ]
    res = analyse_trace(trace)
    assert res["peak_gib_in_step"] * 2**30 == 180
    assert res["peak_site"] == "lemo/spike.py:7 spike"
    assert [(r["site"], r["gib"] * 2**30) for r in res["live_at_peak"]] == [
        ("lemo/saved.py:7 saved", 100), ("lemo/spike.py:7 spike", 80)]


@pytest.mark.slow
def test_graphed_lengths_run_last(tmp_path):
    """Lengths at or below cuda_graph_max_tokens are measured after the others and after the
    longest-length search, so CUDA-graph leftovers cannot raise the other rows' peaks."""
    torch.set_num_threads(1)
    cfg = TINY.replace("seq_lens: [256]", "seq_lens: [256, 512]").replace(
        "arms: [lora, lora_segment, lora_ckpt, longlora_s2, lemo_attn, lemo_full, lemo_full_ckpt,\n"
        "       lemo_full_exact]", "arms: [lora, lemo_full]").replace(
        "profile: [lemo_full@256]", "profile: []\ncuda_graph_max_tokens: 256\n"
                                    "paired: [lora/lemo_full@256]\npaired_rounds: 2")
    out = tmp_path / "out"
    assert main(["--config", _write(tmp_path, cfg), "--out", str(out)]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert [(r["arm"], r["setting"]) for r in data["rows"]] == [
        ("lora", "512"), ("lemo_full", "512"), ("lora", "256"), ("lemo_full", "256")]
    assert data["longest"]["lora"]["longest"] == 512
    pair = data["paired"][0]
    assert len(pair["ratios_b_over_a"]) == 2 and pair["median_ratio"] > 0
    check = {c["name"]: c for c in data["checks"]}
    assert not any("@4K" in n for n in check)  # no 4K in this config: no 4K speed check


def test_step_profile_tiny_cpu(tmp_path, capsys):
    """`lemo.experiments.step_profile` on the tiny CPU model: per arm a positive total, the LeMo
    labels of an eliminating step (predictor, selection, MLP) and operators sorted by self time;
    an unknown arm or a length that is not a multiple of 64 is a one-line error (exit 2)."""
    from lemo.experiments.step_profile import main as profile_main

    torch.set_num_threads(1)
    cfg = _write(tmp_path, TINY)
    out = tmp_path / "prof"
    assert profile_main(["--out", str(out), "--config", cfg, "--seq", "128",
                         "--arms", "lora_ckpt,lemo_full_ckpt", "--top", "10"]) == 0
    data = json.loads((out / "step_profile.json").read_text())
    assert set(data["arms"]) == {"lora_ckpt", "lemo_full_ckpt"}
    lemo = data["arms"]["lemo_full_ckpt"]
    assert {"lemo:predictor", "lemo:select", "lemo:mlp"} <= set(lemo["labels"])
    assert not data["arms"]["lora_ckpt"]["labels"].keys() & {"lemo:predictor", "lemo:select"}
    times = [o["self_ms"] for o in lemo["ops"]]
    assert lemo["kernels"] == []  # no GPU: operators only
    assert lemo["total_ms"] > 0 and len(times) == 10 and times == sorted(times, reverse=True)
    for bad, msg in ((["--arms", "lora,nope"], "unknown arm"),
                     (["--seq", "100"], "multiple of 64")):
        with pytest.raises(SystemExit) as e:
            run(profile_main, ["--out", str(tmp_path / "x"), "--config", cfg, *bad])
        assert e.value.code == 2 and msg in capsys.readouterr().err
