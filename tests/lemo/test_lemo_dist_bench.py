"""`lemo.dist_bench` (the multi-GPU FSDP2 benchmark): config defaults and a clear error without
CUDA. Its runs need GPUs (results/lemo_dist)."""

import pytest
import torch

from lemo.dist_bench import DistBenchConfig, main


def test_defaults_are_the_7b_shape_and_validate():
    cfg = DistBenchConfig()
    cfg.validate()
    assert (cfg.model.hidden_size, cfg.model.num_layers, cfg.model.intermediate_size) == (
        4096, 32, 11008)
    bad = DistBenchConfig(arms=["lora_ckpt", "nope"])
    with pytest.raises(ValueError, match="nope"):
        bad.validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_needs_cuda(tmp_path, capsys):
    from shared.cli import run

    with pytest.raises(SystemExit) as e:
        run(main, ["--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert "needs CUDA" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
