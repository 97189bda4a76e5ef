"""The GPU accuracy arm (`lemo.experiments.accuracy_bench`): its pieces against closed forms,
and the whole pipeline at tiny scale on the CPU (`--quick`)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lemo.data import _INTRO, make_passkey_batch
from lemo.experiments.accuracy_bench import (
    AccuracyBenchConfig,
    _stop_step,
    arm_config,
    curve_set,
    default_across_seeds,
    frontier,
    hits_string,
    main,
    mcnemar_exact_p,
    mixed_batch,
    paired_gap,
    parse_arm,
    passkey_sets,
    plan_steps,
    to_bf16,
)
from shared.config import from_dict
from shared.errors import ConfigError
from shared.text import decode

torch.set_num_threads(1)


def test_arms_parse_to_their_lemo_configs():
    assert parse_arm("lora") == {"kind": "lora"}
    assert parse_arm("lemo:unbiased:k0.4:p0.8") == {"kind": "lemo", "policy": "unbiased",
                                                    "keep": 0.4, "prune": 0.8}
    c = arm_config("lemo:unbiased:k0.4:p0.8", 64, 0.5)
    assert (c.keep_ratio, c.mlp_prune_ratio, c.score_reduce, c.sink_blocks,
            c.local_blocks) == (0.4, 0.8, "mean", 1, 1)
    assert arm_config("lemo:noncausal:k0.6:p0.0", 64, 0.5).causal_scores is False
    assert arm_config("lemo:threshold:k0.6:p0.0", 64, 0.5).selection == "threshold"
    assert arm_config("longlora_s2", 64, 0.5).attention == "s2"
    assert arm_config("lora", 64, 0.5).enabled is False
    for bad in ("lemo:bogus:k0.4:p0", "lemo:unbiased:0.4:p0", "lemo:unbiased:k1.5:p0",
                "lemo:unbiased:kx:p0", "dense"):
        with pytest.raises(ValueError):
            parse_arm(bad)
    with pytest.raises(ConfigError, match="arm 'lemo:bogus:k0.4:p0'"):
        from_dict(AccuracyBenchConfig, {"arms": ["lora", "lemo:bogus:k0.4:p0"]})
    with pytest.raises(ConfigError, match="must start with 'lora'"):
        from_dict(AccuracyBenchConfig, {"arms": ["longlora_s2", "lora"]})
    with pytest.raises(ConfigError, match="ft_stop_passkey"):
        from_dict(AccuracyBenchConfig, {"ft_stop_passkey": 1.5})


def test_default_arms_cover_the_grid():
    arms = AccuracyBenchConfig().arms
    assert arms[0] == "lora" and "longlora_s2" in arms and len(set(arms)) == len(arms)
    lemo = [parse_arm(a) for a in arms if a.startswith("lemo")]
    for policy in ("causal_sum", "unbiased", "noncausal"):
        assert {(a["keep"], a["prune"]) for a in lemo if a["policy"] == policy} >= {
            (0.4, 0.0), (0.4, 0.8), (0.6, 0.0), (0.6, 0.8)}, policy
    assert {a["prune"] for a in lemo if a["policy"] == "threshold"} == {0.0, 0.8}


SAVED_16K = Path(__file__).parents[2] / "results/lemo/frontier/saved_16k.json"


def test_default_arms_first_bracket_the_memory_target():
    """The six arms after LoRA (one device call's worth) are unbiased-policy points on both
    sides of the 0.6x target by the committed saved-bytes table, and the table covers them."""
    ratio = json.loads(SAVED_16K.read_text())["ratio"]
    first = AccuracyBenchConfig().arms[1:7]
    assert all(parse_arm(a)["policy"] == "unbiased" for a in first)
    within = [a for a in first if ratio[a] <= AccuracyBenchConfig().target_saved_ratio]
    assert within and len(within) < len(first)
    assert first[0] in within  # the candidate default runs first


@pytest.mark.slow
def test_committed_saved_16k_table_reproduces():
    """Two entries of `results/lemo/frontier/saved_16k.json` recomputed (~30 s on one core)."""
    from lemo.experiments.saved_16k import shape_ratios

    committed = json.loads(SAVED_16K.read_text())
    got = shape_ratios(AccuracyBenchConfig(), ["lemo:unbiased:k0.6:p0.3"])
    assert got["lora_MB"] == committed["lora_MB"]
    assert got["ratio"]["lemo:unbiased:k0.6:p0.3"] == committed["ratio"][
        "lemo:unbiased:k0.6:p0.3"]


def test_passkey_needle_depth():
    rng = np.random.default_rng(0)
    starts = []
    for depth in (0.0, 0.5, 1.0):
        text = decode(make_passkey_batch(1, 1024, rng, depth)[0])
        starts.append(text.index("The pass key is"))
        assert text.endswith(text[-5:]) and text[-5:].isdigit()
    assert starts[0] == len(_INTRO)  # depth 0: right after the introduction
    assert starts[0] < starts[1] < starts[2]
    needle_end = starts[2] + len("The pass key is 12345. Remember it. 12345 is the pass key.\n")
    question = "What is the pass key? The pass key is 12345"
    assert needle_end == 1024 - len(question)  # depth 1: right before the question
    with pytest.raises(ValueError, match="depth"):
        make_passkey_batch(1, 1024, rng, 1.5)


def test_mixed_batch_draws_each_source_at_its_share():
    code, english = np.full(5000, 1, np.uint8), np.full(5000, 2, np.uint8)
    rng = np.random.default_rng(0)
    x = mixed_batch(code, english, 300, 2000, 0.0, 0.25, rng)
    from_english = (x == 2).all(1)
    assert ((x == 1).all(1) | from_english).all()
    assert abs(from_english.mean() - 0.25) < 0.04
    x = mixed_batch(code, english, 300, 400, 0.5, 0.25, rng)
    passkey = ~((x == 1).all(1) | (x == 2).all(1))
    assert abs(passkey.mean() - 0.5) < 0.08


def _row(ppl, pk):
    return {"ppl": ppl, "passkey_4096": pk}


def test_frontier_default_is_the_smallest_saved_ratio_meeting_every_target():
    cfg = AccuracyBenchConfig()
    rows = {"lora": _row(10.0, 0.9), "lemo:a:k0.4:p0.8": _row(10.2, 0.88),
            "lemo:b:k0.4:p0.0": _row(10.1, 0.9), "lemo:c:k0.4:p0.8": _row(12.0, 0.9),
            "lemo:d:k0.6:p0.0": _row(10.0, 0.9)}
    saved = {"ratio": {"lemo:a:k0.4:p0.8": 0.45, "lemo:b:k0.4:p0.0": 0.55,
                       "lemo:c:k0.4:p0.8": 0.40, "lemo:d:k0.6:p0.0": 0.7}}
    f = frontier(rows, saved, cfg)
    assert f["default"] == "lemo:a:k0.4:p0.8"  # c saves more but misses perplexity
    assert all(p["passkey_paired"] is None for p in f["points"])  # no per-example outcomes
    rows["lemo:a:k0.4:p0.8"] = _row(10.2, 0.7)  # now misses passkey
    assert frontier(rows, saved, cfg)["default"] == "lemo:b:k0.4:p0.0"
    rows["lemo:b:k0.4:p0.0"] = _row(10.5, 0.9)
    f = frontier(rows, saved, cfg)
    # d meets perplexity and passkey above the memory target: memory binds as well
    assert f["default"] is None and f["binding"] == ["memory", "passkey", "perplexity"]
    assert f["nearest_within_memory"][0] == "lemo:b:k0.4:p0.0"  # 5.1% ppl: the smallest miss
    assert f["nearest_meeting_accuracy"] == ["lemo:d:k0.6:p0.0"]
    assert {p["arm"]: p["meets_memory"] for p in f["points"]}["lemo:d:k0.6:p0.0"] is False
    rows["lemo:e:k0.5:p0.3"] = _row(10.2, 0.88)  # accurate, closer to the memory target
    saved["ratio"]["lemo:e:k0.5:p0.3"] = 0.62
    f = frontier(rows, saved, cfg)
    assert f["nearest_meeting_accuracy"] == ["lemo:e:k0.5:p0.3", "lemo:d:k0.6:p0.0"]
    rows["lemo:d:k0.6:p0.0"] = rows["lemo:e:k0.5:p0.3"] = _row(10.5, 0.9)  # now none is
    f = frontier(rows, saved, cfg)
    assert f["binding"] == ["passkey", "perplexity"] and f["nearest_meeting_accuracy"] == []


def test_default_across_seeds_needs_every_seed_and_every_record():
    """An arm qualifies only if it was measured at every seed and met all three targets in each
    record that ran it; the smallest saved ratio among those is the default."""
    saved = {"ratio": {"lemo:a:k0.6:p0.3": 0.60, "lemo:b:k0.6:p0.5": 0.55,
                       "lemo:c:k0.8:p0.8": 0.51, "lemo:d:k0.4:p0.8": 0.47}}
    ok, bad = _row(2.0, 0.95), _row(2.2, 0.80)  # LoRA: _row(2.0, 0.95)

    targets = {k: getattr(AccuracyBenchConfig(), k) for k in (
        "ft_len", "target_ppl_ratio", "target_passkey_gap", "target_saved_ratio",
        "target_lora_passkey")}

    def rec(seed, arms):
        return {"config": {"seed": seed, **targets}, "saved": saved,
                "rows": {"lora": _row(2.0, 0.95), **arms}}

    recs = [rec(0, {"lemo:a:k0.6:p0.3": ok, "lemo:d:k0.4:p0.8": ok}),
            rec(1, {"lemo:a:k0.6:p0.3": ok, "lemo:b:k0.6:p0.5": ok, "lemo:c:k0.8:p0.8": ok}),
            rec(0, {"lemo:b:k0.6:p0.5": ok, "lemo:c:k0.8:p0.8": bad})]
    got = default_across_seeds(recs)
    # d: seed 0 only; c: fails in the third record; b beats a on saved bytes
    assert got["seeds"] == [0, 1]
    assert got["qualified"] == ["lemo:b:k0.6:p0.5", "lemo:a:k0.6:p0.3"]
    assert got["default"] == "lemo:b:k0.6:p0.5"
    recs[2]["rows"]["lemo:b:k0.6:p0.5"] = bad
    assert default_across_seeds(recs)["default"] == "lemo:a:k0.6:p0.3"
    recs[1]["rows"]["lemo:a:k0.6:p0.3"] = bad
    assert default_across_seeds(recs)["default"] is None
    # a record that cannot be judged is refused, never skipped
    for broken, match in ((dict(recs[0], rows={"lemo:a:k0.6:p0.3": ok}), "no lora row"),
                          (dict(recs[0], config={"seed": 0}), "no ft_len"),
                          (dict(recs[0], saved={}), "no saved ratios"),
                          (dict(recs[0], saved={"ratio": {**saved["ratio"],
                                                          "lemo:a:k0.6:p0.3": 0.7}}),
                           "differs")):
        with pytest.raises(ValueError, match=match):
            default_across_seeds([recs[1], broken])


def test_frontier_a_gap_of_exactly_the_target_meets_it():
    """Call E's keep 0.8 + 80% point: LoRA 97 / 100, the arm 92 / 100, stored as float32
    shares (their difference is 0.05000001): 5 points is within 5 points."""
    cfg = AccuracyBenchConfig()
    lora, arm = float(np.float32(0.97)), float(np.float32(0.92))
    assert lora - arm > cfg.target_passkey_gap  # the float difference alone would miss
    rows = {"lora": _row(2.0, lora), "lemo:a:k0.8:p0.8": _row(2.0, arm),
            "lemo:b:k0.8:p0.8": _row(2.0, float(np.float32(0.91)))}
    f = frontier(rows, {"ratio": {"lemo:a:k0.8:p0.8": 0.5, "lemo:b:k0.8:p0.8": 0.5}}, cfg)
    meets = {p["arm"]: p["meets_passkey"] for p in f["points"]}
    assert meets == {"lemo:a:k0.8:p0.8": True, "lemo:b:k0.8:p0.8": False}
    assert f["default"] == "lemo:a:k0.8:p0.8"


def test_frontier_reports_out_of_family_ratios_and_never_picks_by_them():
    """Each point carries its out-of-family perplexity ratio to LoRA; the default is the same
    whatever the out-of-family figures are (they would stop being out of family otherwise)."""
    cfg = AccuracyBenchConfig()
    rows = {"lora": {**_row(10.0, 0.9), "ppl_oof": 20.0},
            "lemo:a:k0.4:p0.8": {**_row(10.2, 0.88), "ppl_oof": 25.0},
            "lemo:b:k0.4:p0.0": {**_row(10.1, 0.9), "ppl_oof": 20.2}}
    saved = {"ratio": {"lemo:a:k0.4:p0.8": 0.45, "lemo:b:k0.4:p0.0": 0.55}}
    f = frontier(rows, saved, cfg)
    oof = {p["arm"]: p["ppl_ratio_oof"] for p in f["points"]}
    assert oof == pytest.approx({"lemo:a:k0.4:p0.8": 1.25, "lemo:b:k0.4:p0.0": 1.01})
    assert f["lora_ppl_oof"] == 20.0 and f["default"] == "lemo:a:k0.4:p0.8"
    for a_oof in (1.0, 20.0, 1e6):
        rows["lemo:a:k0.4:p0.8"]["ppl_oof"] = a_oof
        assert frontier(rows, saved, cfg)["default"] == "lemo:a:k0.4:p0.8"
    del rows["lora"]["ppl_oof"]  # a record without the out-of-family arm still reads
    assert all(p["ppl_ratio_oof"] is None for p in frontier(rows, saved, cfg)["points"])


def test_frontier_judges_passkey_only_when_lora_retrieves():
    """LoRA and every arm at 0 retrieval (the first H200 run): a gap of 0 is no evidence, so
    no arm meets the passkey target, no default is picked and LoRA's own passkey binds."""
    cfg = AccuracyBenchConfig()
    rows = {"lora": _row(10.0, 0.0), "lemo:a:k0.4:p0.8": _row(10.1, 0.0)}
    saved = {"ratio": {"lemo:a:k0.4:p0.8": 0.45}}
    f = frontier(rows, saved, cfg)
    assert f["points"][0]["meets_passkey"] is None and f["points"][0]["meets_ppl"]
    assert f["default"] is None and f["binding"] == ["lora_passkey"]
    assert f["lora_passkey_target_met"] is False
    rows["lora"] = _row(10.0, 0.8)  # at the precondition: judged, and the arm misses by 0.8
    f = frontier(rows, saved, cfg)
    assert f["points"][0]["meets_passkey"] is False and f["binding"] == ["passkey"]


def test_paired_gap_against_hand_counts():
    """Identical outcomes: gap 0, paired SE 0 (the independent SE is not), p 1. A 10-example
    table with b = 2 (LoRA only), c = 1 (arm only): gap 0.1, SE sqrt(3 - 1/10) / 10, exact
    McNemar p = 2 (C(3,0) + C(3,1)) / 2^3 = 1; b = 6, c = 0: p = 2 / 2^6."""
    same = paired_gap("1101", "1101")
    assert (same["b"], same["c"], same["gap"], same["se"], same["p_mcnemar"]) == (0, 0, 0, 0, 1)
    assert same["se_independent"] == pytest.approx(math.sqrt(2 * 0.75 * 0.25 / 4))
    q = paired_gap("1111111100", "1111110010")
    assert (q["n"], q["b"], q["c"]) == (10, 2, 1) and q["gap"] == pytest.approx(0.8 - 0.7)
    assert q["se"] == pytest.approx(math.sqrt(2.9) / 10) and q["p_mcnemar"] == 1.0
    assert paired_gap("1" * 6 + "0" * 4, "0" * 10)["p_mcnemar"] == pytest.approx(2 / 64)
    assert paired_gap("0" * 10, "1" * 6 + "0" * 4)["gap"] == pytest.approx(-0.6)
    with pytest.raises(ValueError, match="one nonzero length"):
        paired_gap("101", "10")


def test_mcnemar_exact_p_is_scipys_binomial_test():
    from scipy.stats import binomtest

    for b, c in ((0, 0), (3, 0), (0, 7), (4, 1), (5, 5), (12, 3), (40, 55), (150, 120)):
        want = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
        assert mcnemar_exact_p(b, c) == pytest.approx(want, rel=1e-9), (b, c)


def test_paired_variance_is_the_independent_one_less_the_covariance():
    """var_paired = var_independent - 2 cov / n (cov over the shared examples): uncorrelated
    outcomes give the independent SE, positively correlated ones (two arms failing on the same
    hard examples) a smaller one."""
    rng = np.random.default_rng(0)
    hard = rng.random(200) < 0.2
    ref = ~hard | (rng.random(200) < 0.1)
    arm = ~hard & (rng.random(200) < 0.93)
    q = paired_gap(hits_string(ref), hits_string(arm))
    cov = np.cov(ref, arm, bias=True)[0, 1]
    assert cov > 0 and q["gap"] == pytest.approx(ref.mean() - arm.mean())
    assert q["se"] ** 2 == pytest.approx(q["se_independent"] ** 2 - 2 * cov / 200)
    assert q["se"] < q["se_independent"]
    flat = paired_gap("1100", "1010")  # p11 = p1 p2: covariance 0
    assert flat["se"] == pytest.approx(flat["se_independent"])


def test_plan_steps_fills_the_time_left():
    assert plan_steps(25, 5.0, 0.1, 150.0, 6000) == 25 + 1450
    assert plan_steps(25, 5.0, 0.01, 150.0, 6000) == 6000  # capped by pretrain_steps
    assert plan_steps(25, 200.0, 0.1, 150.0, 6000) == 25  # already past: stop now
    assert plan_steps(25, 5.0, 0.0, 150.0, 100) == 100


def test_stop_rule_needs_two_checks_in_a_row():
    assert not _stop_step([(25, 0.95)], 0.9)
    assert not _stop_step([(25, 0.95), (50, 0.85)], 0.9)
    assert _stop_step([(25, 0.5), (50, 0.9), (75, 0.95)], 0.9)
    assert not _stop_step([(25, 1.0), (50, 1.0)], 0.0)  # 0: always ft_steps


def test_curve_examples_differ_from_the_eval_examples():
    cfg = from_dict(AccuracyBenchConfig, {"passkey_lens": [1024], "ft_len": 1024,
                                          "curve_per_depth": 2, "passkey_depths": 3})
    c, e = curve_set(cfg), np.concatenate(passkey_sets(cfg)[1024])
    assert c.shape == (6, 1024)
    assert not {bytes(r[-5:]) for r in c} & {bytes(r[-5:]) for r in e}


def test_bf16_base_keeps_rope_frequencies_float32():
    """`.to(bfloat16)` rounds inv_freq (relative error up to 2^-9: at 4K positions a phase
    error of radians); to_bf16 keeps them exactly and casts everything else."""
    from lemo.config import ModelConfig
    from lemo.models import build_model

    mc = ModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                     intermediate_size=96, rope_scaling_factor=4.0)
    ref = build_model(mc).model.rotary_emb.inv_freq.clone()
    assert not torch.equal(ref.to(torch.bfloat16).float(), ref)  # the rounding is real
    model = to_bf16(build_model(mc))
    rot = model.model.rotary_emb
    assert rot.inv_freq.dtype == torch.float32 and torch.equal(rot.inv_freq, ref)
    assert torch.equal(rot.original_inv_freq, ref)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert "inv_freq" in dict(rot.named_buffers())  # still a buffer: moves with .to(device)


def test_saved_bytes_on_fake_tensors_equal_a_real_step():
    """`saved_step_mib_shapes` (no data, no memory) = `saved_step_mib` (a real CPU step) to the
    byte, for LoRA, elimination, MLP pruning, their mix and S2-Attn, on a GQA model whose dense
    layers would save an s x s mask and repeated k/v if HF built its causal mask."""
    from lemo.finetune import saved_step_mib, saved_step_mib_shapes
    from lemo.gpu_bench import GpuModelConfig, build_model

    mc = GpuModelConfig(hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2,
                        intermediate_size=128, vocab_size=512, dtype="float32")
    arms = ["lora", "lemo:unbiased:k0.6:p0.0", "lemo:unbiased:k0.4:p0.8",
            "lemo:causal_sum:k0.5:p0.2", "lemo:noncausal:k0.3:p0.0", "longlora_s2"]
    lcs = {a: arm_config(a, 64, 0.5) for a in arms}
    torch.manual_seed(0)
    model = build_model(mc, 512, "cpu", 8, 16)
    x = torch.randint(0, 512, (1, 512))
    real = {a: saved_step_mib(model, x, lc) for a, lc in lcs.items()}
    fake = saved_step_mib_shapes(build_model(mc, 512, "meta", 8, 16), 512, 512, lcs)
    assert fake == real
    assert len(set(real.values())) == len(arms)  # every arm saves a different amount


def test_quick_run_writes_results_and_frontier(tmp_path):
    """The whole pipeline at tiny scale (CPU, ~5 s): pretraining, saved bytes, base + 2 arms."""
    with pytest.raises(SystemExit) as e:
        from shared.cli import run
        run(main, ["--quick", "--device", "cpu", "--out", str(tmp_path)])
    assert e.value.code == 0
    r = json.loads((tmp_path / "results.json").read_text())
    assert set(r["rows"]) == {"base", "lora", "lemo:unbiased:k0.5:p0.8"} and not r["skipped"]
    assert r["pretrain"]["steps"] == 4 and r["params"] > 0
    assert r["ft_steps_used"] == 2  # LoRA never reached ft_stop_passkey: ft_steps
    for arm in ("lora", "lemo:unbiased:k0.5:p0.8"):
        assert r["rows"][arm]["steps"] == 2
        assert [s for s, _ in r["rows"][arm]["passkey_curve"]] == [1, 2]
    for row in r["rows"].values():
        assert row["ppl"] > 1 and row["ppl_oof"] > 1 and len(row["passkey_512_by_depth"]) == 2
    assert r["oof"]["files"] > 100 and r["oof"]["bytes"] == 512 * 2 + 1  # ppl_windows 1
    assert r["pretrain"]["ppl_oof_at_pretrain_len"] > 1
    p = r["frontier"]["points"][0]
    assert p["ppl_ratio_oof"] == pytest.approx(
        r["rows"][p["arm"]]["ppl_oof"] / r["rows"]["lora"]["ppl_oof"])
    assert 0 < r["saved"]["ratio"]["lemo:unbiased:k0.5:p0.8"] < 1
    assert r["frontier"]["points"][0]["arm"] == "lemo:unbiased:k0.5:p0.8"
    assert (tmp_path / "frontier.png").is_file() and (tmp_path / "config.yaml").is_file()
    # per-example outcomes: depth by depth in the seeded order, their mean the accuracy, and
    # the frontier's paired figures computed from them
    for row in r["rows"].values():
        for n in (256, 512):
            hits = row[f"passkey_{n}_hits"]
            assert len(hits) == 2 and set(hits) <= {"0", "1"}
            assert np.mean([h == "1" for h in hits]) == pytest.approx(row[f"passkey_{n}"])
            assert [float(h) for h in hits] == pytest.approx(row[f"passkey_{n}_by_depth"])
    q = p["passkey_paired"]
    assert q == paired_gap(r["rows"]["lora"]["passkey_512_hits"],
                           r["rows"][p["arm"]]["passkey_512_hits"])
    assert q["gap"] == pytest.approx(p["passkey_gap"])


def test_bad_config_exits_2_before_writing(tmp_path, capsys):
    from shared.cli import run

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        run(main, ["--quick", "--set", "ft_len=1000", "--out", str(out)])
    assert e.value.code == 2 and "multiple of block_size" in capsys.readouterr().err
    assert not out.exists()


def test_full_setting_is_refused_without_cuda(tmp_path, capsys, monkeypatch):
    """The full setting is GPU-only: on a CPU it exits 2 in one line before any output, unless
    --quick (the CPU setting) or cpu_ok=true asks for it."""
    from lemo.experiments import accuracy_bench
    from shared.cli import run
    from shared.errors import DataError

    def past_the_check(*_a, **_k):  # the step after the device check reads the texts: stop
        raise DataError("past the device check")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accuracy_bench, "out_of_family_text", past_the_check)
    out = tmp_path / "out"
    for argv in (["--out", str(out)], ["--device", "cpu", "--out", str(out)]):
        with pytest.raises(SystemExit) as e:
            run(main, argv)
        assert e.value.code == 2 and "GPU-only" in capsys.readouterr().err
        assert not out.exists()
    for extra in (["--quick"], ["--set", "cpu_ok=true"]):
        with pytest.raises(SystemExit) as e:
            run(main, ["--device", "cpu", *extra, "--out", str(out)])
        assert e.value.code == 2 and "past the device check" in capsys.readouterr().err


def test_time_caps_stop_pretraining_and_skip_arms(tmp_path):
    """pretrain_seconds stops pretraining after the step that passes it; arms after LoRA that
    would pass time_budget_s are recorded as skipped, and the run still ends with its JSON."""
    from shared.cli import run

    with pytest.raises(SystemExit) as e:
        run(main, ["--quick", "--device", "cpu", "--out", str(tmp_path), "--set",
                   "pretrain_seconds=0", "--set", "time_budget_s=0", "--set", "saved_bytes=false"])
    assert e.value.code == 0
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["pretrain"]["steps"] == 1 and r["pretrain"]["steps_planned"] == 4
    assert set(r["rows"]) == {"base", "lora"} and r["skipped"] == ["lemo:unbiased:k0.5:p0.8"]
    assert "saved" not in r and r["frontier"]["points"] == []


def test_pretraining_runs_by_time(tmp_path, monkeypatch):
    """With a large pretrain_steps, the schedule is re-planned after the timed steps to what
    fits pretrain_seconds, and pretraining ends on that schedule (or at the time cap)."""
    from lemo.experiments import accuracy_bench
    from shared.cli import run

    monkeypatch.setattr(accuracy_bench, "PRETRAIN_CALIB", (1, 3))  # timed early on a slow CPU
    with pytest.raises(SystemExit) as e:
        run(main, ["--quick", "--device", "cpu", "--out", str(tmp_path), "--set",
                   "pretrain_steps=100000", "--set", "pretrain_seconds=2", "--set",
                   "time_budget_s=0", "--set", "saved_bytes=false"])
    assert e.value.code == 0
    p = json.loads((tmp_path / "results.json").read_text())["pretrain"]
    assert p["step_seconds"] > 0 and 3 <= p["steps_planned"] < 100000
    assert p["steps"] == p["steps_planned"] or p["stopped_by_time"]


def _shipped_lm_setting(length: int, **over):
    """The shipped embedded LM (pretrained at 512 bytes with passkey windows; it retrieves) and
    a bench config at `length` bytes around it."""
    from lemo.config import ModelConfig
    from lemo.models import load_model

    mc = ModelConfig()
    state = {k: v.clone() for k, v in load_model(mc).state_dict().items()}
    cfg = from_dict(AccuracyBenchConfig, {
        "device": "cpu", "pretrain_len": 512, "ft_len": length, "passkey_lens": [length],
        "passkey_depths": 4, "passkey_per_depth": 4, "ppl_windows": 1, "eval_batch": 8,
        "block_size": 64, **over})
    cfg.model = mc
    return cfg, state


def _evaluate(cfg, state, factor: float) -> dict:
    from lemo.experiments.accuracy_bench import build_lm, evaluate
    from shared.text import load_corpus

    model = build_lm(cfg, factor)
    model.load_state_dict(state)
    val = load_corpus("val", max_bytes=cfg.ft_len * 2 + 1)
    return evaluate(model, cfg, val, passkey_sets(cfg), "cpu")


def test_bench_evaluation_reads_a_retrieving_lm():
    """The bench's own evaluation (its passkey sets, `evaluate`) on an LM that retrieves reads
    success; the same weights under linear RoPE scaling x4 (the bench's base row) do not: the
    scaling, not the evaluation, is what the first GPU run's zeros measured."""
    cfg, state = _shipped_lm_setting(512)
    assert _evaluate(cfg, state, 1.0)["passkey_512"] >= 0.9
    assert _evaluate(cfg, state, 4.0)["passkey_512"] <= 0.1


@pytest.mark.slow
def test_lora_relearns_retrieval_after_rope_scaling():
    """The bench's fine-tuning (`finetune_arm`, dense LoRA, stop rule and curve) brings back the
    retrieval that RoPE x4 erased, and its evaluation reads it: 0 on the curve's first check,
    >= 0.9 twice in a row before the cap, >= 0.8 on the held-out eval examples. (~1-2 min on
    one core: 0 until ~100 steps, then up within ~100 more - why 60 steps read 0 on the GPU. The
    cap leaves room for one dip: with a 260-step cap the rule first held at step 260 on the
    2-core development machine on 2026-12-06, curve 0.5 at 120, 0.875 at 160-180, 1.0 / 0.875 /
    1.0 / 1.0 at 200-260.)"""
    from lemo.experiments.accuracy_bench import evaluate, finetune_arm
    from shared.text import load_corpus

    cfg, state = _shipped_lm_setting(256, rope_factor=4.0, ft_steps=320, ft_batch=4,
                                     ft_lr=3e-3, ft_passkey_mix=1.0, ft_stop_passkey=0.9,
                                     curve_every=20, curve_per_depth=4)
    code = load_corpus("train", max_bytes=100_000)
    model, row = finetune_arm(state, "lora", cfg, code, code, "cpu", None, curve_set(cfg))
    curve = [a for _, a in row["passkey_curve"]]
    assert curve[0] == 0.0 and row["steps"] < cfg.ft_steps and min(curve[-2:]) >= 0.9
    val = load_corpus("val", max_bytes=cfg.ft_len * 2 + 1)
    assert evaluate(model, cfg, val, passkey_sets(cfg), "cpu")["passkey_256"] >= 0.8


def test_saved_breakdown_groups_sum_to_the_total_and_show_no_mlp_input():
    """`lemo.experiments.saved_breakdown` at 256 tokens on the bench's 16-layer model (fake
    tensors): each arm's groups add up to its total, and the pruned MLP's groups hold only its
    kept channels (no (1, 256, 2048) input)."""
    from lemo.experiments.saved_breakdown import breakdown

    res = breakdown(256, ["lora", "lemo:unbiased:k0.6:p0.5"])
    for r in res.values():
        assert abs(sum(g["mib"] for g in r["groups"]) - r["mib"]) < 1e-6
    mlp = [g["site"] for g in res["lemo:unbiased:k0.6:p0.5"]["groups"] if "mlp.py" in g["site"]]
    assert mlp and all("(256, 2816)" in s or "int64" in s for s in mlp), mlp


def test_saved_breakdown_bad_length_is_a_one_line_error(tmp_path, capsys):
    from lemo.experiments.saved_breakdown import main
    from shared.cli import run

    out = tmp_path / "b.json"
    with pytest.raises(SystemExit) as e:
        run(main, [str(out), "--seq", "100"])
    assert e.value.code == 2 and "multiple of the block size" in capsys.readouterr().err
    assert not out.exists()
