"""Seeding, determinism and device selection."""

from __future__ import annotations

import os
import platform
import random

import numpy as np

from shared.errors import ConfigError

__all__ = ["set_seed", "pick_device", "versions", "cpu_count"]


def set_seed(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed python, numpy and torch (if imported); return a numpy Generator for local use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    except ImportError:
        pass
    return np.random.default_rng(seed)


def pick_device(name: str = "auto") -> str:
    """'auto' -> 'cuda' when available, else 'cpu'. Asking for an absent CUDA is an error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)")
    return name


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def versions() -> dict:
    """Versions and hardware that a benchmark figure depends on."""
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "platform": platform.platform(), "cpu_count": cpu_count()}
    for mod in ("torch", "transformers", "peft", "triton", "scipy", "cv2", "gymnasium"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:
            continue
    try:
        import torch

        if torch.cuda.is_available():
            out["device"] = torch.cuda.get_device_name(0)
            out["cuda"] = torch.version.cuda
        else:
            out["device"] = "cpu: " + (platform.processor() or platform.machine())
    except ImportError:
        out["device"] = "cpu"
    return out
