"""Fuzz suite options: --runslow (the repo-wide flag) runs every fuzz test with 10x examples."""

import fuzz_harness


def pytest_configure(config):
    fuzz_harness.SLOW = bool(config.getoption("--runslow", default=False))
