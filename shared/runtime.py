"""Seeding, determinism and device selection."""

from __future__ import annotations

import os
import platform
import random

import numpy as np

from shared.errors import ConfigError

__all__ = ["set_seed", "pick_device", "versions", "cpu_count", "configure_threads"]


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


def _cgroup_cpus(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """CPUs granted by a cgroup v2 quota ("200000 100000" -> 2.0); None when unlimited/absent."""
    try:
        quota, period = open(path).read().split()[:2]
        return None if quota == "max" else max(1.0, int(quota) / int(period))
    except (OSError, ValueError):
        return None


def cpu_count() -> int:
    """Cores this process may actually use: the affinity mask, capped by a cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(n, int(quota)) if quota else n)


_THREADS: int | None = None


def configure_threads(env: dict | None = None) -> int:
    """Set torch's intra-op threads once per process: `OMP_NUM_THREADS` when it is a positive
    integer, else the cores actually available (`cpu_count`). torch's own default counts the
    host's cores, which oversubscribes a container or a shared machine. Returns the count."""
    global _THREADS
    if _THREADS is not None:
        return _THREADS
    env = os.environ if env is None else env
    raw = env.get("OMP_NUM_THREADS", "").strip()
    n = int(raw) if raw.isdigit() and int(raw) > 0 else cpu_count()
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    _THREADS = n
    return n


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
