"""Recipes, loaders, bad input and the transformers API lemo relies on."""

import json

import numpy as np
import pytest
import torch

from lemo import bench, train
from lemo import eval as lemo_eval
from lemo.config import LemoConfig, ModelConfig, TrainConfig
from lemo.data import (
    ANSWER_LEN,
    load_text_file,
    make_passkey_batch,
    passkey_accuracy,
    passkey_hits,
)
from lemo.models import build_model, load_model
from lemo.patch import UnsupportedModelError, apply_lemo
from lemo.predictor import PREDICTORS_FILE, load_predictors
from shared.cli import run
from shared.config import from_dict, load_config
from shared.errors import ConfigError, DataError

TINY = ["--set", "model.hidden_size=32", "--set", "model.num_layers=4",
        "--set", "model.intermediate_size=64", "--set", "model.pretrained=false",
        "--set", "data.seq_len=128", "--set", "lemo.block_size=32",
        "--set", "lemo.segment_size=64", "--set", "data.max_corpus_bytes=200000",
        "--set", "data.passkey_mix=0.0"]


def exit_code(main, argv, capsys):
    with pytest.raises(SystemExit) as e:
        run(main, argv)
    return e.value.code, capsys.readouterr().err.strip()


def test_transformers_layer_api_we_rely_on():
    """Fails clearly if transformers renames what lemo.layers wraps."""
    from transformers.modeling_layers import GradientCheckpointingLayer
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer
    from transformers.models.opt.modeling_opt import OPTDecoderLayer

    assert issubclass(LlamaDecoderLayer, GradientCheckpointingLayer)
    for arch, names in {"llama": ["self_attn", "mlp", "input_layernorm",
                                  "post_attention_layernorm"],
                        "qwen2": ["self_attn", "mlp", "input_layernorm",
                                  "post_attention_layernorm"],
                        "mistral": ["self_attn", "mlp", "input_layernorm",
                                    "post_attention_layernorm"],
                        "opt": ["self_attn", "self_attn_layer_norm", "fc1", "fc2",
                                "final_layer_norm", "activation_fn"]}.items():
        m = build_model(ModelConfig(arch=arch, hidden_size=32, num_layers=1, num_heads=4,
                                    num_kv_heads=2, intermediate_size=64))
        layer = (m.model.decoder.layers if arch == "opt" else m.model.layers)[0]
        for n in names:
            assert hasattr(layer, n), f"{arch} decoder layer lost '{n}'"
        attn = layer.self_attn
        for n in ["q_proj", "k_proj", "v_proj", "scaling"] + (
                ["out_proj", "num_heads"] if arch == "opt" else ["o_proj", "head_dim"]):
            assert hasattr(attn, n), f"{arch} attention lost '{n}'"
    assert isinstance(layer, OPTDecoderLayer) and hasattr(layer, "do_layer_norm_before")


def test_unsupported_model_names_supported_ones():
    from transformers import GPT2Config, GPT2LMHeadModel

    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=256))
    with pytest.raises(UnsupportedModelError, match="supported: llama, mistral, qwen2, opt"):
        apply_lemo(m, LemoConfig())


def test_bad_config_is_one_line_exit_2(tmp_path, capsys):
    code, err = exit_code(train.main, ["--set", "lemo.keep_ration=0.5"], capsys)
    assert code == 2 and "unknown key 'lemo.keep_ration'" in err and "\n" not in err
    code, err = exit_code(train.main, ["--set", "lemo.keep_ratio=1.5"], capsys)
    assert code == 2 and "keep_ratio" in err
    code, err = exit_code(train.main, ["--set", "data.seq_len=100"], capsys)
    assert code == 2 and "not a multiple of lemo.block_size" in err
    code, err = exit_code(train.main, ["--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "config file not found" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("lemo: {keep_ratio: 'high'}\n")
    with pytest.raises(ConfigError, match="keep_ratio"):
        load_config(bad, TrainConfig)
    assert not list(tmp_path.glob("*/config.yaml"))  # nothing half-written


def test_text_loaders(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"text": "hello"}) + "\n\n" + json.dumps({"text": "world"}) + "\n")
    assert bytes(load_text_file(p)) == b"hello\n\nworld"
    (tmp_path / "a.txt").write_text("abc")
    assert load_text_file(tmp_path / "a.txt").tolist() == [97, 98, 99]
    p.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:1: missing string field 'text'"):
        load_text_file(p)
    p.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: corrupt JSON"):
        load_text_file(p)
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(DataError, match="no text"):
        load_text_file(tmp_path / "e.txt")
    with pytest.raises(DataError, match="not found"):
        load_text_file(tmp_path / "missing.txt")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataError, match="unsupported data format"):
        load_text_file(tmp_path / "x.csv")


class _Oracle(torch.nn.Module):
    """Predicts the true next byte of the sequences it was built with."""

    def __init__(self, seqs):
        super().__init__()
        self.seqs = torch.from_numpy(seqs)

    def forward(self, input_ids):
        n = input_ids.shape[1]
        rows = (self.seqs[None, :, :n] == input_ids[:, None]).all(-1).float().argmax(1)
        nxt = self.seqs[rows, 1:n]
        nxt = torch.cat([nxt, torch.zeros_like(nxt[:, :1])], dim=1)  # last position: no next
        return type("Out", (), {"logits": torch.nn.functional.one_hot(nxt, 256).float()})()


def test_passkey_examples_and_accuracy():
    rng = np.random.default_rng(0)
    x = make_passkey_batch(3, 400, rng)
    assert x.shape == (3, 400)
    for row in x:
        text = bytes(row.astype(np.uint8).tolist()).decode()
        key = text[-ANSWER_LEN:]
        assert key.isdigit() and text.count(key) == 3  # stated twice, answered once
    assert passkey_accuracy(_Oracle(x), x, batch_size=2) == 1.0
    wrong = x.copy()
    wrong[1, -1] = ord("x")
    assert passkey_accuracy(_Oracle(wrong), x, batch_size=3) == pytest.approx(2 / 3)
    assert passkey_hits(_Oracle(wrong), x, batch_size=2).tolist() == [True, False, True]
    with pytest.raises(DataError, match="too short"):
        make_passkey_batch(1, 64, rng)


def test_train_from_pretrained_dir_jsonl_resume_and_eval(tmp_path, capsys):
    ckpt = tmp_path / "hf"
    build_model(from_dict(ModelConfig, {"hidden_size": 32, "num_layers": 4,
                                        "intermediate_size": 64})).save_pretrained(str(ckpt))
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"def f{i}(x):\n    return x + {i}\n" * 4})
                              for i in range(40)))
    run_dir = tmp_path / "run"
    argv = TINY + ["--set", f"model.path={ckpt}", "--set", f"data.train_path={data}",
                   "--set", "steps=3", "--set", "save_every=2", "--set", "data.passkey_mix=0.0",
                   "--out", str(run_dir), "--device", "cpu"]
    assert train.main(argv) == 0
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3
    assert train.main(argv[:-4] + ["--set", "steps=5", "--out", str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 5  # resumed at 3, not restarted
    # another LeMo setting does not resume this checkpoint (nor rewrite its config.yaml)
    saved = (run_dir / "config.yaml").read_text()
    capsys.readouterr()  # the runs' progress so far
    code, err = exit_code(train.main, argv[:-4] + ["--set", "steps=6", "--set",
                                                   "lemo.keep_ratio=0.5", "--out", str(run_dir)],
                          capsys)
    assert code == 2 and "keep_ratio" in err and len(err.splitlines()) == 1
    assert (run_dir / "config.yaml").read_text() == saved
    code, err = exit_code(train.main, argv[:-4] + ["--set", "lr=0.5", "--out", str(run_dir)],
                          capsys)  # a training key outside `lemo`, too
    assert code == 2 and "lr=0.001 (now 0.5)" in err and len(err.splitlines()) == 1, err
    assert (run_dir / "config.yaml").read_text() == saved
    # a one-process checkpoint under torchrun (which reads sharded ones only) is refused, not
    # silently restarted from step 0
    from types import SimpleNamespace

    from lemo.distributed import DistEnv

    with pytest.raises(ConfigError, match="without torchrun"):
        train._train(SimpleNamespace(out=str(run_dir)),
                     load_config(run_dir / "config.yaml", TrainConfig), DistEnv(world_size=2))
    assert (run_dir / "config.yaml").read_text() == saved
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 5
    assert lemo_eval.main(["--run", str(run_dir), "--set", "seq_len=256",
                           "--set", "ppl_windows=1", "--set", "passkey_trials=1"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert np.isfinite(result["perplexity"]) and 0 <= result["passkey_accuracy"] <= 1


def test_bad_model_dirs_and_nan_weights(tmp_path, capsys):
    with pytest.raises(DataError, match="no config.json"):
        load_model(from_dict(ModelConfig, {"path": str(tmp_path)}))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable config.json"):
        load_model(from_dict(ModelConfig, {"path": str(tmp_path)}))
    nan_dir = tmp_path / "nan"
    m = build_model(from_dict(ModelConfig, {"hidden_size": 32, "num_layers": 4,
                                            "intermediate_size": 64}))
    with torch.no_grad():
        m.model.norm.weight.fill_(float("nan"))
    m.save_pretrained(str(nan_dir))
    code, err = exit_code(train.main, TINY + ["--set", f"model.path={nan_dir}", "--set",
                                              "steps=1", "--out", str(tmp_path / "r")], capsys)
    # NaN weights are refused when the model loads, before any step
    assert code == 2 and "'model.norm.weight' has NaN" in err


def test_bench_no_accuracy_smoke(tmp_path):
    out = tmp_path / "b"
    argv = ["--no-accuracy", "--out", str(out), "--set", "model.hidden_size=32",
            "--set", "model.num_layers=4", "--set", "model.intermediate_size=64",
            "--set", "model.pretrained=false", "--set", "mem_seq_lens=[256]",
            "--set", "target_seq_len=256", "--set", "ft_seq_len=256", "--set", "lemo.block_size=32",
            "--set", "predictor.steps=5", "--set", "predictor.windows=1", "--set",
            "time_repeats=1"]
    assert bench.main(argv) == 0
    rep = json.loads((out / "bench.json").read_text())
    arms = {r["arm"] for r in rep["rows"]}
    assert {"lora", "lora+segloss", "lora+gc", "longlora_s2", "lemo_attn", "lemo_full",
            "lemo_full_pred"} <= arms
    saved = {r["arm"]: r["saved_MB"] for r in rep["rows"]}
    assert saved["lemo_full"] < saved["lemo_attn"] < saved["lora"]
    assert saved["lora+gc"] < saved["lora"]
    assert rep["checks"] and rep["headline"] and (out / "bench.png").is_file()


def test_shipped_configs_load():
    from pathlib import Path

    from lemo.config import EvalConfig
    from lemo.pretrain import PretrainConfig

    root = Path(__file__).resolve().parents[2] / "configs" / "lemo"
    files = [p for p in root.glob("*.yaml") if not p.name.startswith("gpu_")]
    assert len(files) >= 7
    kinds = {"eval": EvalConfig, "pretrain": PretrainConfig}
    for p in files:
        load_config(p, kinds.get(p.stem.split("_")[0], TrainConfig))


def test_train_with_predictors_then_eval_with_elimination(tmp_path):
    run_dir = tmp_path / "pred"
    assert train.main(TINY + ["--set", "lemo.scorer=predictor", "--set", "predictor.steps=4",
                              "--set", "predictor.windows=1", "--set", "predictor.hidden=8",
                              "--set", "steps=2", "--out", str(run_dir)]) == 0
    table = load_predictors(run_dir / PREDICTORS_FILE)
    assert sorted(table) == [2]  # 4 layers: 0-1 dense, 3 dense (last) -> only layer 2
    assert lemo_eval.main(["--run", str(run_dir), "--set", "eliminate=true",
                           "--set", "seq_len=256", "--set", "ppl_windows=1",
                           "--set", "passkey_trials=1"]) == 0
    assert json.loads((run_dir / "eval.json").read_text())["eliminate"] is True
    with pytest.raises(ConfigError, match="multiple of the run's lemo.block_size"):
        lemo_eval.main(["--run", str(run_dir), "--set", "eliminate=true",
                        "--set", "seq_len=250"])
