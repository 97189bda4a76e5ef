"""Model artefacts load without running code: a crafted pickle handed over as a model path is
refused with a one-line error and its payload never runs; the safetensors artefacts round-trip
and reject another model's weights."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from shared.errors import DataError

MARKER = "pwned-marker"


class _Payload:
    """Unpickling this runs os.system (it would create the marker file)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def crafted(tmp_path: Path, name: str) -> Path:
    f = tmp_path / name
    f.write_bytes(pickle.dumps({"state_dict": _Payload(tmp_path / MARKER)}))
    return f


def _mobifuse(path):
    from mobifuse.models import load_model

    return load_model(path)


def _twscardio(path):
    from twscardio.models import load_model

    return load_model(path)


def _lemo_predictors(path):
    from lemo.predictor import load_predictors

    return load_predictors(path)


def _policy(path):
    from shared.il.policy import load_policy

    return load_policy(path)


def _snapshots(path):
    from shared.il.export import export

    return export(path, "x", out_dir=path.parent / "out")


@pytest.mark.parametrize("load", [_mobifuse, _twscardio, _lemo_predictors, _policy, _snapshots])
@pytest.mark.parametrize("name", ["model.safetensors", "model.pt"])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path, load, name):
    path = crafted(tmp_path, name)
    with pytest.raises(DataError) as e:
        load(path)
    assert len(str(e.value).splitlines()) == 1 and str(path) in str(e.value)
    assert not (tmp_path / MARKER).exists()


def test_mobifuse_eval_refuses_a_crafted_model_in_one_line(tmp_path):
    import contextlib
    import io

    from mobifuse.eval import main
    from shared.cli import run

    crafted(tmp_path, "model.safetensors")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        run(main, ["--run", str(tmp_path), "--out", str(tmp_path / "ev")])
    assert e.value.code == 2 and len(err.getvalue().strip().splitlines()) == 1
    assert not (tmp_path / MARKER).exists() and not (tmp_path / "ev").exists()


def test_artefacts_round_trip_and_refuse_another_models_weights(tmp_path):
    from mobifuse.config import NetConfig
    from mobifuse.models import TwoStageFusionNet
    from mobifuse.models import load_model as load_mf
    from mobifuse.models import save_model as save_mf
    from twscardio.config import NetConfig as TNet
    from twscardio.models import build_model
    from twscardio.models import load_model as load_tw
    from twscardio.models import save_model as save_tw

    net = TwoStageFusionNet(NetConfig(widths=[4, 8, 8]))
    save_mf(net, tmp_path / "m.safetensors")
    back = load_mf(tmp_path / "m.safetensors")
    for (k, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    tw = build_model(17, TNet())
    save_tw(tw, TNet(), tmp_path / "t.safetensors", {"hist": {"val": 0.5}})
    model, info = load_tw(tmp_path / "t.safetensors")
    assert info["hist"] == {"val": 0.5}
    assert all(torch.equal(a, b) for a, b in zip(tw.state_dict().values(),
                                                 model.state_dict().values()))
    with pytest.raises(DataError, match="holds 'twscardio.BCG2SCGNet', not a "
                                        "mobifuse.TwoStageFusionNet model"):
        load_mf(tmp_path / "t.safetensors")


def test_lemo_predictors_round_trip_after_elastic_pruning(tmp_path):
    from lemo.predictor import PatternPredictor, load_predictors, save_predictors

    p = PatternPredictor(32, 4, block_size=16, hidden=12, out_dim=8)
    p.q_net.dead[:5] = 10
    p.q_net.seen = 10
    p.prune(0.5)  # q_net now has 7 hidden units, k_net 12
    save_predictors({2: p}, tmp_path / "p.safetensors")
    (idx, q), = load_predictors(tmp_path / "p.safetensors").items()
    assert idx == 2 and (q.q_net.hidden, q.k_net.hidden) == (p.q_net.hidden, 12)
    x = torch.randn(1, 64, 32)
    assert torch.allclose(q.tiles(x), p.eval().tiles(x))
