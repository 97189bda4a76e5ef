"""A tiny CrossLM setup shared by the federation tests (built once per pytest run)."""

from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[2] / "configs" / "crosslm" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_cfg():
    from crosslm.config import CrossLMConfig
    from shared.config import load_config

    return load_config(TINY, CrossLMConfig)


@pytest.fixture(scope="session")
def tiny_setup(tiny_cfg):
    import torch

    from crosslm.pipeline import build_setup

    torch.set_num_threads(1)
    return build_setup(tiny_cfg)
