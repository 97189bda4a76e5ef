"""The round loop: the Flower engine reproduces the in-process run, checkpoints resume to the
same result, the arms differ only where they should."""

import contextlib
import io

import pytest
import torch

from crosslm import train as cl_train
from crosslm.pipeline import client_metrics, make_arm
from shared.cli import run
from shared.fl import run_rounds
from shared.io import read_json


def _cli(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            run(cl_train.main, [str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code or 0
    return code, err.getvalue()


@pytest.mark.slow
def test_flower_engine_gives_the_in_process_metrics(tiny_setup, tiny_cfg, tmp_path):
    a = cl_train.train(tiny_cfg, tmp_path / "loop", tiny_setup, "crosslm", "loop")
    b = cl_train.train(tiny_cfg, tmp_path / "fl", tiny_setup, "crosslm", "flower-inprocess")
    assert a["slm"] == b["slm"]
    assert a["llm_after"] == b["llm_after"]
    assert (tmp_path / "loop" / "adapter.safetensors").is_file()


@pytest.mark.slow
def test_resume_after_an_interruption_gives_the_same_result(tiny_setup, tiny_cfg, tmp_path,
                                                            monkeypatch):
    full = cl_train.train(tiny_cfg, tmp_path / "full", tiny_setup)
    from crosslm.federation import CrossLMStrategy

    orig = CrossLMStrategy.aggregate_fit

    def crash_in_round_2(self, rnd, updates):
        if rnd == 2:
            raise KeyboardInterrupt
        return orig(self, rnd, updates)

    monkeypatch.setattr(CrossLMStrategy, "aggregate_fit", crash_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        cl_train.train(tiny_cfg, tmp_path / "cut", tiny_setup)
    assert (tmp_path / "cut" / "ckpt.pt").is_file()
    monkeypatch.setattr(CrossLMStrategy, "aggregate_fit", orig)
    resumed = cl_train.train(tiny_cfg, tmp_path / "cut", tiny_setup)
    assert resumed["slm"] == full["slm"] and resumed["llm_after"] == full["llm_after"]
    assert len(read_json(tmp_path / "cut" / "history.json")) == tiny_cfg.fl.rounds
    # eval re-measures the saved adapter: the adapted LLM reproduces train's figures
    from crosslm.eval import evaluate_run

    ev = evaluate_run(tmp_path / "full", per_label=tiny_cfg.gen.per_label, setup=tiny_setup)
    assert ev["adapted"]["perplexity"] == pytest.approx(full["llm_after"]["perplexity"])
    assert ev["adapted"]["gen_acc"] == pytest.approx(full["llm_after"]["gen_acc"])
    assert ev["base"]["perplexity"] == pytest.approx(full["llm_before"]["perplexity"])
    assert ev["samples"] and (tmp_path / "full" / "eval.json").is_file()


def test_kd_never_updates_the_llm_and_standalone_sends_nothing(tiny_setup, tiny_cfg):
    ids = list(range(tiny_cfg.data.num_clients))
    kd, client = make_arm(tiny_setup, "kd", tiny_cfg)
    before = {k: v.clone() for k, v in kd.llm.named_parameters()}
    run_rounds(kd, client, ids, 2, private={})
    assert all(torch.equal(v, before[k]) for k, v in kd.llm.named_parameters())
    assert kd.global_state["train_len"].numel() > 0
    sa, client = make_arm(tiny_setup, "standalone", tiny_cfg)
    private = {}
    run_rounds(sa, client, ids, 2, private=private)
    assert sa.global_state["query_len"].numel() == 0 == sa.global_state["train_len"].numel()
    m = client_metrics(client, private)
    assert len(m["acc"]) == len(ids) and all(0 <= a <= 1 for a in m["acc"])


def test_novelty_weighting_takes_repeats_out_of_the_llm_update(tiny_setup, tiny_cfg,
                                                               monkeypatch):
    import dataclasses

    import numpy as np

    from crosslm import federation
    from shared.fl import Update

    seen = {}
    monkeypatch.setattr(federation, "update_llm",
                        lambda model, prompts, conts, w, *a, **k: seen.update(w=w) or [0.0])
    for novelty in (False, True):
        fb = dataclasses.replace(tiny_cfg.feedback, novelty=novelty)
        cfg = dataclasses.replace(tiny_cfg, feedback=fb)
        strategy, _ = make_arm(tiny_setup, "crosslm", cfg)
        strategy.query_texts = ["the same sample text", "the same sample text",
                                "a quite different one", "unrelated words here"]
        strategy.query_labels = np.array([0, 1, 0, 1])
        scores = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64)
        seen.clear()
        strategy.aggregate_fit(1, [Update(0, {"scores": scores}, 10, {})])
        want = [0.9, 0.8, 0.7, 0.6] if not novelty else [0.0, 0.0, 0.7, 0.6]
        assert np.asarray(seen["w"]) == pytest.approx(want)


def test_fedavg_refuses_heterogeneous_clients(tiny_setup, tiny_cfg):
    with pytest.raises(ValueError, match="homogeneous"):
        make_arm(tiny_setup, "fedavg", tiny_cfg)
    strategy, client = make_arm(tiny_setup, "fedavg", tiny_cfg, kinds=["minilm"])
    run_rounds(strategy, client, list(range(tiny_cfg.data.num_clients)), 1, private={})
    m = client_metrics(client, {}, strategy.global_state)
    assert len(set(m["acc"])) == 1  # one global model


def test_bad_config_and_data_are_one_line_errors_without_a_run_dir(tmp_path):
    cases = [(["--set", "slm.kinds=[minilm, gpt]"], "unknown SLM 'gpt'"),
             (["--set", "data.task=polarity"], "needs data.path"),
             (["--set", "data.task=polarity", "--set", f"data.path={tmp_path / 'no.cor'}"],
              "polarity file not found"),
             (["--set", f"llm.path={tmp_path}"], "no config.json"),
             (["--set", "data.num_clients=5"], "slm.kinds has 4 entries")]
    for extra, msg in cases:
        code, err = _cli("--out", tmp_path / "run", *extra)
        lines = [x for x in err.strip().splitlines() if x.startswith("error")]
        assert code == 2 and len(lines) == 1 and msg in lines[0], (extra, err)
        assert not (tmp_path / "run").exists()


def test_a_changed_config_or_mode_never_resumes_an_old_run(tiny_setup, tiny_cfg, tmp_path,
                                                          monkeypatch):
    from shared.config import save_config, to_dict
    from shared.errors import ConfigError
    from shared.io import Checkpointer
    from tests.crosslm.conftest import TINY

    out = tmp_path / "run"
    out.mkdir()
    save_config(tiny_cfg, out / "config.yaml")
    Checkpointer(out).save({"round": 1, "mode": "kd", "config": to_dict(tiny_cfg)})
    saved = (out / "config.yaml").read_text()
    code, err = _cli("--config", TINY, "--out", out, "--set", "fl.rounds=9")
    assert code == 2 and "fl.rounds" in err and len(err.strip().splitlines()) == 1
    assert (out / "config.yaml").read_text() == saved  # refused before anything was written
    with pytest.raises(ConfigError, match="--mode kd"):  # same config, another arm
        cl_train.train(tiny_cfg, out, tiny_setup, "crosslm")
    assert (out / "config.yaml").read_text() == saved
    # from the command line, before the data and the LLM are built
    monkeypatch.setattr(cl_train, "build_setup", lambda cfg: pytest.fail("built the setup"))
    code, err = _cli("--config", TINY, "--out", out)
    assert code == 2 and "--mode kd (now crosslm)" in err and len(err.strip().splitlines()) == 1
    assert (out / "config.yaml").read_text() == saved
