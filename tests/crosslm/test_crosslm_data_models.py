"""Data loaders and split, the SLMs, and `from_pretrained` of a saved checkpoint."""

import numpy as np
import pytest
import torch

from crosslm.data import docstring_paragraphs, federate, load_polarity, load_task
from crosslm.generation import sample_label_conditioned
from crosslm.models import (
    ByteBiLSTM,
    ByteCNN,
    ByteCodec,
    build_tiny_llm,
    byte_features,
    load_llm,
    with_lora,
)
from shared.errors import ConfigError, DataError


def test_docstring_paragraphs(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""Module docstring that is long enough to count as a paragraph.\n\nshort\n'
                 '\n>>> 1 + 1 is a doctest paragraph and is dropped even though long\n"""\n'
                 'def f():\n    """Function doc:   whitespace   is normalised in this one."""\n')
    (tmp_path / "bad.py").write_text("def (:\n")
    got = docstring_paragraphs([f, tmp_path / "bad.py", f], max_chars=30)
    assert got == ["Module docstring that is long", "Function doc: whitespace is no"]


def test_polarity_file_and_its_errors(tmp_path):
    lines = [f"__label__{'pos' if i % 2 else 'neg'} sentence number {i} ." for i in range(24)]
    p = tmp_path / "pol.cor"
    p.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    task = load_polarity(p)
    assert task.label_names == ["neg", "pos"] and len(task.texts) == 24
    assert np.bincount(task.labels).tolist() == [12, 12] and task.texts[1] == "sentence number 1 ."
    for bad, msg in [("no label here\n", "does not start with"), ("__label__pos \n", "no text"),
                     ("\n".join(lines[::2]), "needs >= 2 labels"),
                     ("\n".join(lines[:6]), "has 3 sentences")]:
        p.write_text(bad)
        with pytest.raises(DataError, match=msg):
            load_polarity(p)
    with pytest.raises(DataError, match="not found"):
        load_polarity(tmp_path / "missing.cor")
    (tmp_path / "x.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a gensim wheel"):
        load_polarity(tmp_path / "x.whl")


def test_federate_holds_out_test_and_oracle_and_skews_labels():
    task = load_task("docs-binary", max_per_class=120)
    fed = federate(task, num_clients=3, beta=0.5, private_per_client=16, test_frac=0.3,
                   oracle_frac=0.2, seed=0)
    priv = np.concatenate(fed.private)
    assert all(len(p) == 16 for p in fed.private) and len(set(priv.tolist())) == priv.size
    assert not set(priv.tolist()) & set(fed.test.tolist())
    assert not set(priv.tolist()) & set(fed.oracle.tolist())
    assert not set(fed.test.tolist()) & set(fed.oracle.tolist())
    assert np.bincount(task.labels[fed.test]).tolist() == [36, 36]  # stratified
    again = federate(task, 3, 0.5, 16, 0.3, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(fed.private, again.private))
    with pytest.raises(DataError, match="fewer than"):
        federate(task, 3, 0.5, 500, 0.3, 0.2, seed=0)


def test_byte_slms_read_padded_batches_independently_of_padding():
    x = byte_features(["short", "a much longer text input"], max_bytes=32)
    assert x.shape == (2, 32) and int((x[0] != 256).sum()) == 5
    wide = byte_features(["short"], max_bytes=64)
    for cls in (ByteCNN, ByteBiLSTM):
        torch.manual_seed(0)
        m = cls(3).eval()
        out = m(x)
        assert out.shape == (2, 3)
        assert torch.allclose(m(wide)[0], out[0], atol=1e-5)  # padding does not matter


def test_from_pretrained_tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_tiny_llm(16, 1, 2, 32)
    model.save_pretrained(tmp_path / "ckpt")
    loaded, codec = load_llm(tmp_path / "ckpt")
    assert isinstance(codec, ByteCodec)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    lora = with_lora(loaded, 2, 4.0)
    texts, labels = sample_label_conditioned(lora, codec, [codec.encode("a: ")], 2, 5, 1.0, 0.9,
                                             seed=0, vocab_limit=256)
    assert len(texts) == 2 and labels.tolist() == [0, 0]
    with pytest.raises(ConfigError, match="no config.json"):
        load_llm(tmp_path)
