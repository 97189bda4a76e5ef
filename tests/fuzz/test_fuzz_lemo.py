"""Fuzz: lemo loaders (fine-tuning text files, the accuracy bench's out-of-family C++ headers,
`load_model` of a save_pretrained directory) and, through the same strict loader, ripple's
checkpoint loading.

A checkpoint loads only when config.json describes its tensors exactly: a missing tensor, an
extra layer, NaN weights, zero heads or 10**6 declared layers are refused before any weights
are random-initialised or gigabytes allocated.
"""

import json

import numpy as np
import pytest
import torch
from fuzz_harness import (
    Target,
    assert_clean,
    assert_rejects,
    fuzz_settings,
    mutate_and_check,
    mutation_ops,
)
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from lemo.config import ModelConfig
from lemo.data import load_text_file, out_of_family_text
from lemo.models import build_model, load_model
from shared.config import from_dict
from shared.errors import DataError

TINY = {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
        "intermediate_size": 32, "max_position_embeddings": 64}


def _seed_text(d):
    lines = [json.dumps({"text": f"line {i} caf\u00e9 " * 3}) for i in range(5)]
    (d / "d.jsonl").write_text("\n".join(lines) + "\n")
    (d / "d.txt").write_bytes(b"plain text \xff bytes are tokens\n")


def _load_text(d):
    return load_text_file(d / "d.jsonl"), load_text_file(d / "d.txt")


def _check_text(out, d):
    for tok in out:
        assert tok.dtype == np.uint8 and tok.ndim == 1 and tok.size > 0


OOF_FILES = ("c10/util/a.h", "torch/csrc/api/include/b.h")


def _seed_oof(d):
    for i, rel in enumerate(OOF_FILES):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(f"#pragma once\n// header {i} \u00e9\nint f{i}();\n".encode())


def _check_oof(tok, d):
    assert tok.dtype == np.uint8 and tok.ndim == 1 and tok.size > 0
    text = tok.tobytes()
    for rel in OOF_FILES:  # every header without a licence grant is in the text, whole
        b = (d / rel).read_bytes()
        if b"Permission is hereby granted" not in b and b"Redistribution and use in source" \
                not in b:
            assert b in text, rel


def _seed_model(d):
    m = build_model(from_dict(ModelConfig, TINY), seed=0)
    m.save_pretrained(str(d / "m"))


def _load(d):
    return load_model(from_dict(ModelConfig, {**TINY, "path": str(d / "m")}))


def _check_model(model, d):
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
    want = load_file(str(d / "m" / "model.safetensors"))
    got = model.state_dict()
    for k, v in want.items():  # accepted means: the stored weights, not a random init
        assert torch.equal(got[k], v), k


TARGETS = [
    Target("text-file", _seed_text, _load_text, _check_text, ("d.jsonl", "d.txt")),
    Target("oof-headers", _seed_oof, lambda d: out_of_family_text(None, d), _check_oof,
           OOF_FILES),
    Target("hf-checkpoint", _seed_model, _load, _check_model,
           ("m/config.json", "m/model.safetensors")),
]
BY_NAME = {t.name: t for t in TARGETS}


@pytest.mark.parametrize("name, n", [("text-file", 360), ("oof-headers", 120),
                                     ("hf-checkpoint", 150)])
def test_mutated_files(tmp_path_factory, name, n):
    @fuzz_settings(n)
    @given(ops=mutation_ops(), which=st.integers(0, 3))
    def run(ops, which):
        t = BY_NAME[name]
        mutate_and_check(t, tmp_path_factory.getbasetemp(), which, ops)

    run()


CONFIG_VALUES = st.sampled_from([0, 1, 2, 3, -1, 10**6, 16, 32, 1.5, None, "llama", "bert",
                                 "relu", True, [], 1e9])


@fuzz_settings(150)
@given(edits=st.dictionaries(st.sampled_from(["num_attention_heads", "num_hidden_layers",
                                              "hidden_size", "intermediate_size",
                                              "num_key_value_heads", "vocab_size", "model_type",
                                              "hidden_act", "tie_word_embeddings",
                                              "max_position_embeddings", "rms_norm_eps"]),
                             CONFIG_VALUES, min_size=1, max_size=2))
def test_structured_config_json(tmp_path_factory, edits):
    t = BY_NAME["hf-checkpoint"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    c = json.loads((d / "m" / "config.json").read_text())
    c.update(edits)
    (d / "m" / "config.json").write_text(json.dumps(c))
    assert_clean(t, d)


@fuzz_settings(90)
@given(edit=st.sampled_from(["drop", "extra", "nan", "inf", "reshape", "dtype"]),
       index=st.integers(0, 100))
def test_structured_tensors(tmp_path_factory, edit, index):
    t = BY_NAME["hf-checkpoint"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    path = d / "m" / "model.safetensors"
    sd = load_file(str(path))
    k = sorted(sd)[index % len(sd)]
    if edit == "drop":
        del sd[k]
    elif edit == "extra":
        sd["model.layers.7.mlp.up_proj.weight"] = torch.zeros(32, 16)
    elif edit in ("nan", "inf"):
        sd[k] = sd[k].clone()
        sd[k].view(-1)[0] = float(edit)
    elif edit == "reshape":
        sd[k] = sd[k].reshape(-1)
    elif edit == "dtype":
        sd[k] = sd[k].to(torch.float16)
    save_file(sd, str(path), metadata={"format": "pt"})
    assert_clean(t, d)


# --- regressions


def test_oof_regressions(tmp_path):
    t = BY_NAME["oof-headers"]
    d = t.fresh(tmp_path)
    for rel in OOF_FILES:
        (d / rel).write_bytes(b"")
    assert_rejects(t, d, "are empty")
    d = t.fresh(tmp_path)
    for rel in OOF_FILES:
        (d / rel).write_bytes(b"/* Permission is hereby granted, free of charge */")
    assert_rejects(t, d, "no .h files")


def test_text_regressions(tmp_path):
    t = BY_NAME["text-file"]
    d = t.fresh(tmp_path)
    (d / "d.jsonl").write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    assert_rejects(t, d, "d.jsonl:2", "not UTF-8")
    d = t.fresh(tmp_path)
    (d / "d.jsonl").write_text('{"text": "a"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_rejects(t, d, "d.jsonl:2", "nested")


@pytest.mark.parametrize("edit, words", [
    ({"num_attention_heads": 0}, "unreadable config.json"),
    ({"num_hidden_layers": 10**6}, "num_hidden_layers"),
    ({"num_hidden_layers": 3}, "missing tensor"),
    ({"intermediate_size": 10**7}, "mis-shaped"),
])
def test_config_json_must_describe_the_weights(tmp_path, edit, words):
    t = BY_NAME["hf-checkpoint"]
    d = t.fresh(tmp_path)
    c = json.loads((d / "m" / "config.json").read_text())
    c.update(edit)
    (d / "m" / "config.json").write_text(json.dumps(c))
    assert_rejects(t, d, words)


@pytest.mark.parametrize("edit, words", [("drop", "missing tensor"), ("extra", "unexpected"),
                                         ("nan", "NaN"), ("truncate", "cannot load weights")])
def test_weights_are_loaded_strictly(tmp_path, edit, words):
    t = BY_NAME["hf-checkpoint"]
    d = t.fresh(tmp_path)
    path = d / "m" / "model.safetensors"
    if edit == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    else:
        sd = load_file(str(path))
        if edit == "drop":
            del sd["model.layers.0.mlp.up_proj.weight"]
        elif edit == "extra":
            sd["model.layers.2.mlp.up_proj.weight"] = torch.zeros(32, 16)
        else:
            sd["model.norm.weight"] = torch.full((16,), float("nan"))
        save_file(sd, str(path), metadata={"format": "pt"})
    assert_rejects(t, d, words)


def test_ripple_loads_through_the_same_strict_loader(tmp_path):
    from ripple.models import load_model as ripple_load

    t = Target("ripple-checkpoint", _seed_model, lambda d: ripple_load(d / "m"),
               lambda m, d: None)
    d = t.fresh(tmp_path)
    sd = load_file(str(d / "m" / "model.safetensors"))
    del sd["model.layers.0.mlp.up_proj.weight"]
    save_file(sd, str(d / "m" / "model.safetensors"), metadata={"format": "pt"})
    assert_rejects(t, d, "missing tensor")


def test_adapter_must_hold_every_lora_tensor(tmp_path):
    from lemo import eval as lemo_eval
    from lemo import train

    ckpt = tmp_path / "hf"
    build_model(from_dict(ModelConfig, TINY)).save_pretrained(str(ckpt))
    run = tmp_path / "run"
    assert train.main(["--set", f"model.path={ckpt}", "--set", "data.seq_len=64",
                       "--set", "lemo.block_size=32", "--set", "lemo.segment_size=64",
                       "--set", "lemo.dense_first=0.0",  # 2 layers: layer 0 eliminates
                       "--set", "data.max_corpus_bytes=50000", "--set", "data.passkey_mix=0.0",
                       "--set", "steps=1", "--out", str(run), "--device", "cpu"]) == 0
    path = run / "adapter" / "adapter_model.safetensors"
    sd = load_file(str(path))
    del sd[sorted(k for k in sd if "lora_B" in k)[0]]
    save_file(sd, str(path), metadata={"format": "pt"})
    argv = ["--set", f"run_dir={run}", "--set", "seq_len=256", "--set", "ppl_windows=1",
            "--set", "passkey_trials=1", "--out", str(tmp_path / "ev")]
    with pytest.raises(DataError, match="adapter lacks 1 LoRA tensor"):
        lemo_eval.main(argv)
    assert lemo_eval.main(argv + ["--set", "allow_missing_adapter=true"]) == 0
