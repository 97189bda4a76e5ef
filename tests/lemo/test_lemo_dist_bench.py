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


@pytest.mark.parametrize("field, value", [("keep_ratio", 0.0), ("mlp_prune_ratio", 1.0),
                                          ("sink_blocks", -1), ("local_blocks", -1)])
def test_bad_lemo_fields_are_one_line_exit_2_before_any_output(field, value, tmp_path, capsys):
    """The LeMo fields inherited from `lemo.gpu_bench` are checked as there, before the CUDA
    check and before the run directory exists."""
    from shared.cli import run

    with pytest.raises(SystemExit) as e:
        run(main, ["--set", f"{field}={value}", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert field in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_needs_cuda(tmp_path, capsys):
    from shared.cli import run

    with pytest.raises(SystemExit) as e:
        run(main, ["--out", str(tmp_path / "x")])
    assert e.value.code == 2
    assert "needs CUDA" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
