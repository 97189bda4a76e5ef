"""Small helpers shared by the Triton kernels: interpreter detection and launch settings.

Under Triton's CPU interpreter (`TRITON_INTERPRET=1`, CPU tensors) a bf16 `tl.dot` returns
garbage (numpy has no bf16), so kernels take a `UPCAST` constexpr that casts dot operands to
fp32 there; on the GPU the operands stay in their own dtype and use the tensor cores.
"""

from __future__ import annotations

import os

import torch

__all__ = ["interpreting", "upcast", "dot_precision", "num_warps"]


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def upcast(t: torch.Tensor) -> bool:
    """Cast dot operands to fp32 inside the kernel (interpreter, or fp32 inputs for exactness)."""
    return interpreting() or t.dtype == torch.float32


def dot_precision(t: torch.Tensor) -> str:
    """fp32 inputs use IEEE dots so the kernels match the fp32 fallback, not tf32."""
    return "ieee" if t.dtype == torch.float32 else "tf32"


def num_warps(default: int) -> int:
    return 1 if interpreting() else default
