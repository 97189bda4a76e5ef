"""Metrics, seeded cached generators, seeding/devices, the CLI skeleton and the text corpus."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from shared import metrics
from shared.cache import cache_key, cached_arrays, cached_file
from shared.errors import ConfigError, DataError
from shared.runtime import pick_device, set_seed, versions
from shared.text import decode, encode, load_corpus, sample_windows


# -- metrics -------------------------------------------------------------------------------
def test_metrics_closed_form():
    p, t = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 2.0])
    assert metrics.mae(p, t) == pytest.approx(1.0)
    assert metrics.rmse(p, t) == pytest.approx(np.sqrt(5 / 3))
    assert metrics.absrel(p, t) == pytest.approx((0 + 1 + 1) / 3)
    assert metrics.delta_accuracy(p, t, 1.25) == pytest.approx(1 / 3)
    assert metrics.mae(p, t, mask=[True, False, False]) == 0.0
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert np.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))
    assert metrics.accuracy([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)
    s = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    assert metrics.topk_hit(s, [1, 2], k=1) == 0.5 and metrics.topk_hit(s, [1, 2], k=2) == 1.0
    assert metrics.normalized_return(55.0, 10.0, 100.0) == pytest.approx(50.0)


def test_metrics_bad_input():
    with pytest.raises(DataError, match="shape"):
        metrics.mae([1, 2], [1, 2, 3])
    with pytest.raises(DataError, match="no valid elements"):
        metrics.mae([1.0], [1.0], mask=[False])
    with pytest.raises(DataError, match="positive"):
        metrics.absrel([1.0], [0.0])
    with pytest.raises(DataError):
        metrics.normalized_return(1.0, 5.0, 5.0)


# -- cache -----------------------------------------------------------------------------------
def test_cached_arrays_generates_once_and_keys_on_config():
    calls = []

    def gen(seed):
        calls.append(seed)
        return {"x": np.random.default_rng(seed).normal(size=5)}

    a = cached_arrays("t", {"seed": 1}, lambda: gen(1))
    b = cached_arrays("t", {"seed": 1}, lambda: gen(1))
    c = cached_arrays("t", {"seed": 2}, lambda: gen(2))
    assert calls == [1, 2] and np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], c["x"])
    assert cache_key("t", {"a": 1, "b": 2}) == cache_key("t", {"b": 2, "a": 1})
    assert cache_key("t", {"a": 1}, version=1) != cache_key("t", {"a": 1}, version=2)


def test_corrupt_cache_entry_is_regenerated():
    from shared.cache import cache_dir

    cached_arrays("c", {"k": 1}, lambda: {"x": np.ones(3)})
    (cache_dir() / f"{cache_key('c', {'k': 1})}.npz").write_bytes(b"broken")
    out = cached_arrays("c", {"k": 1}, lambda: {"x": np.zeros(3)})
    assert np.array_equal(out["x"], np.zeros(3))


def test_cached_file_build_failure_leaves_nothing():
    def bad(path):
        path.write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached_file("f", {"a": 1}, bad)
    p = cached_file("f", {"a": 1}, lambda path: path.write_text("done"))
    assert p.read_text() == "done"


# -- runtime ---------------------------------------------------------------------------------
def test_set_seed_is_reproducible():
    import torch

    set_seed(3)
    a = (np.random.rand(), torch.rand(1).item())
    set_seed(3)
    assert a == (np.random.rand(), torch.rand(1).item())


def test_pick_device():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device("tpu")
    v = versions()
    assert v["cpu_count"] >= 1 and "torch" in v


# -- text ------------------------------------------------------------------------------------
def test_corpus_splits_are_disjoint_and_stable():
    val = load_corpus("val")
    test = load_corpus("test")
    assert val.dtype == np.uint8 and len(val) > 100_000 and len(test) > 100_000
    assert not np.array_equal(val[:1000], test[:1000])
    assert np.array_equal(load_corpus("val", max_bytes=500), val[:500])
    assert len(load_corpus("test", source="pydoc-topics")) > 1000
    with pytest.raises(ConfigError, match="unknown corpus source"):
        load_corpus("train", source="nope")
    with pytest.raises(ConfigError, match="unknown corpus split"):
        load_corpus("dev")


def test_byte_tokens_round_trip_and_windows():
    s = "def f(x):\n    return x  # ü"
    assert decode(encode(s)) == s
    w = sample_windows(encode(s * 10), 16, 4, np.random.default_rng(0))
    assert w.shape == (4, 16) and w.dtype == np.int64
    with pytest.raises(ConfigError, match="fewer than seq_len"):
        sample_windows(encode("ab"), 16, 1, np.random.default_rng(0))


def test_pretrain_lowers_loss():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from shared.text import evaluate_perplexity, pretrain_causal_lm

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    tokens = load_corpus("val", max_bytes=50_000)
    before = evaluate_perplexity(model, tokens, 32, max_windows=4)
    losses = pretrain_causal_lm(model, tokens, steps=30, seq_len=32, batch_size=8, lr=3e-3,
                                warmup=5)
    after = evaluate_perplexity(model, tokens, 32, max_windows=4)
    assert losses[-1] < losses[0] and after < 0.7 * before


# -- cli -------------------------------------------------------------------------------------
CLI = textwrap.dedent('''
    from dataclasses import dataclass
    from shared.cli import parse_args, run
    from shared.log import get_logger

    @dataclass
    class Cfg:
        steps: int = 1  # steps
        seed: int = 0  # seed

    def main(argv=None):
        args, cfg = parse_args(argv, Cfg, prog="demo.train", description="Demo tool.")
        get_logger("demo").info("steps=%d seed=%d quick=%s", cfg.steps, cfg.seed, args.quick)

    if __name__ == "__main__":
        run(main)
''')


@pytest.fixture
def demo(tmp_path):
    p = tmp_path / "demo.py"
    p.write_text(CLI)
    return p


def _run(script, *args):
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=str(script.parent), env={"PYTHONPATH": str(_root()), "CI": "1"})


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_cli_overrides_and_flags(demo):
    r = _run(demo, "--set", "steps=3", "--seed", "7", "--quick")
    assert r.returncode == 0, r.stderr
    assert "steps=3 seed=7 quick=True" in r.stderr


def test_cli_help_explains(demo):
    r = _run(demo, "--help")
    assert r.returncode == 0 and "Demo tool." in r.stdout and "--set KEY=VALUE" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--set", "stepz=3"], "error: <defaults>: unknown key 'stepz'"),
    (["--config", "missing.yaml"], "error: config file not found: missing.yaml"),
    (["--set", "steps=x"], "'steps': expected an integer"),
    (["--device", "cuda"], "has no 'device' field"),
])
def test_cli_bad_input_is_one_line_and_exit_2(demo, args, message):
    r = _run(demo, *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_progress_quiet_in_ci(monkeypatch):
    from shared.log import progress, progress_enabled

    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("PROGRESS", raising=False)
    assert not progress_enabled()
    assert list(progress(range(3))) == [0, 1, 2]



def test_cached_dir_builds_once_and_failed_build_leaves_nothing():
    from shared.cache import cached_dir

    calls = []

    def bad(d):
        (d / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cached_dir("d", {"a": 1}, bad)

    def good(d):
        calls.append(1)
        (d / "config.json").write_text("{}")

    p1 = cached_dir("d", {"a": 1}, good)
    p2 = cached_dir("d", {"a": 1}, good)
    assert p1 == p2 and calls == [1] and (p1 / "config.json").is_file()
    assert not [x for x in p1.parent.iterdir() if x.name.startswith(f".{p1.name}")]


def test_logging_follows_a_replaced_stderr(monkeypatch):
    import io
    import logging

    from shared.log import setup_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging()
    first.close()  # e.g. pytest's capture of an earlier test
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    setup_logging()
    logging.getLogger("demo").warning("hello")
    assert "hello" in second.getvalue()
