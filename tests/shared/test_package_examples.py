"""Each package's `__init__` docstring example (what a notebook user types) runs as written,
on tiny inputs, and every name in `__all__` imports."""

from __future__ import annotations

import doctest
import importlib

import pytest

PACKAGES = ["lemo", "ripple", "twscardio", "mobifuse", "offline_il_select", "robwe", "ollie",
            "edgeoar", "bestshot", "crosslm"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_example_runs(name):
    pkg = importlib.import_module(name)
    assert pkg.__all__, f"{name} exports nothing"
    for attr in pkg.__all__:
        assert getattr(pkg, attr) is not None, f"{name}.{attr}"
    result = doctest.testmod(pkg, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4, f"{name}: no runnable example in its docstring"
    assert result.failed == 0, f"{name}: {result.failed} example lines failed"
