"""The one-ulp probe: unperturbed it is `train.pretrain`'s offline phase to the last bit; a moved
element is its initial value's float32 successor, the rest of the initialisation unchanged."""

import pytest
import torch

import ollie.bench as bench
from ollie.data import build_data
from ollie.experiments.ulp_sensitivity import offline_run
from ollie.train import pretrain
from shared.errors import ConfigError


@pytest.fixture(scope="module")
def setting():
    cfg = bench.load_train_config("configs/ollie/tiny.yaml", ["eval_episodes=1", "seed=0"], False)
    return cfg, build_data(cfg.data)


def test_unperturbed_run_is_pretrain(setting):
    cfg, data = setting
    torch.set_num_threads(1)
    ref = pretrain(cfg, data)
    got = offline_run(cfg, data, -1)
    assert got["score"] == ref["offline_score"]
    assert got["y_mean_expert"] == float(ref["method"].y_o[:len(data.expert["actions"])].mean())


def test_moved_element_changes_d_from_step_zero(setting):
    cfg, data = setting
    torch.set_num_threads(1)
    base, moved = offline_run(cfg, data, -1), offline_run(cfg, data, 0)
    before, after = moved["moved"]
    assert base["moved"] is None and after > before
    assert torch.nextafter(torch.tensor(before), torch.tensor(1e9)).item() == after
    # the same initialisation otherwise: d's first loss differs by at most float32 rounding
    assert moved["d_loss"]["0"] == pytest.approx(base["d_loss"]["0"], rel=1e-6)


def test_element_past_the_weight_is_refused(setting):
    cfg, data = setting
    with pytest.raises(ConfigError, match="--elements"):
        offline_run(cfg, data, 10**9)
