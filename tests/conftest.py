"""Repo-wide test options: `slow` tests run only with --runslow, `gpu` tests only with CUDA.
Every test runs in its own empty working directory, so no recipe, loader or test may depend on
being started from the repository root (defaults such as `configs/<package>/x.yaml` resolve to
the package's shipped copy)."""

import os

import pytest

os.environ.setdefault("PROGRESS", "0")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="gpu: CUDA not available")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests share one cache dir per session, never the user's."""
    d = tmp_path_factory.getbasetemp() / "paperbench-cache"
    monkeypatch.setenv("PAPERBENCH_CACHE", str(d))


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    """Run from a fresh directory outside the repository."""
    monkeypatch.chdir(tmp_path)
