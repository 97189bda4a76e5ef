"""`python -m lemo.experiments.passkey_sweep`: the bench's accuracy part over a grid of settings.

Runs `lemo.bench`'s accuracy arms (the same `accuracy_arm` code, data and seeds) for every
combination of a grid of BenchConfig overrides, each (setting, arm) job in its own worker
process (spawned; on one GPU the tiny LM leaves room for many at once). Writes sweep.json after
every finished job (so a killed sweep keeps what it measured) and sweep.md at the end.

Axes: each is alternatives separated by " | ", an alternative being one or more `key=value`
overrides joined by "&", e.g. "model.rope_scaling_factor=1 | model.rope_scaling_factor=4". Keys
are BenchConfig fields, or `probe.*` for the selection probe (`lemo.experiments.probes`).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import time
from dataclasses import dataclass, field

from lemo.bench import BenchConfig, accuracy_arm, passkey_sets
from lemo.experiments.probes import ProbeConfig, probe_hook
from shared.cli import build_parser, parse_args, run
from shared.config import apply_overrides, from_dict, save_config, to_dict
from shared.errors import ConfigError
from shared.io import atomic_write_json, atomic_write_text, make_run_dir
from shared.log import get_logger
from shared.runtime import pick_device

__all__ = ["SweepConfig", "settings", "main"]

log = get_logger("lemo.experiments.passkey_sweep")

DESCRIPTION = """Grid sweep of lemo.bench's accuracy part (fine-tuning steps, lr, passkey mix,
RoPE scaling, trainable embeddings/norms, model ...): held-out perplexity and passkey accuracy
of each arm per setting, in parallel worker processes. Writes sweep.json and sweep.md.

example:
  python -m lemo.experiments.passkey_sweep --device cuda --set workers=8 \\
      --set 'axes=["model.rope_scaling_factor=1 | model.rope_scaling_factor=4",
                   "ft_lr=1e-3 | ft_lr=3e-3"]'
"""


@dataclass
class SweepConfig:
    """What `lemo.experiments.passkey_sweep` runs."""

    device: str = "auto"
    workers: int = 4  # parallel worker processes
    threads: int = 1  # torch threads per worker
    bench: BenchConfig = field(default_factory=BenchConfig)  # the base setting
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # selection probe (off: the paper)
    axes: list[str] = field(default_factory=list)  # grid axes (see the module docstring)
    arms: list[str] = field(default_factory=lambda: ["base", "lora", "lemo_full"])


def settings(axes: list[str]) -> list[list[str]]:
    """The cartesian product of the axes, as override lists."""
    options = []
    for axis in axes:
        alts = [[o.strip() for o in alt.split("&") if o.strip()] for alt in axis.split("|")]
        if any(not alt or any("=" not in o for o in alt) for alt in alts):
            raise ConfigError(f"axes: '{axis}' is not 'key=value[&key=value] | ...'")
        options.append(alts)
    return [sum(combo, []) for combo in itertools.product(*options)]


def job_configs(bench_dict: dict, probe: ProbeConfig, overrides: list[str]
                ) -> tuple[BenchConfig, ProbeConfig]:
    """One setting: `probe.*` overrides go to the probe, the others to the bench config."""
    ours = [o for o in overrides if o.startswith("probe.")]
    bc = from_dict(BenchConfig, apply_overrides(bench_dict, [o for o in overrides
                                                             if o not in ours]))
    probe = from_dict(ProbeConfig, apply_overrides(to_dict(probe),
                                                   [o.removeprefix("probe.") for o in ours]))
    return bc, probe


_TOKENS: dict = {}


def _job(args: tuple) -> dict:
    overrides, arm, bench_dict, probe, device, threads = args
    import torch

    from lemo.data import load_text

    torch.set_num_threads(threads)
    if not _TOKENS:
        _TOKENS["train"] = load_text(None, "train", "text", 4_000_000)
        _TOKENS["val"] = load_text(None, "val", "text", 2_000_000)
    bc, probe = job_configs(bench_dict, probe, overrides)
    t0 = time.perf_counter()
    row, _ = accuracy_arm(arm, bc, device, _TOKENS["train"], _TOKENS["val"], passkey_sets(bc),
                          probe_hook(probe, bc.seed))
    row.pop("_predictor_info", None)
    return {"setting": " ".join(overrides), "arm": arm, **row,
            "job_s": time.perf_counter() - t0}


def _table(rows: list[dict]) -> str:
    metrics = sorted({k for r in rows for k in r} - {"setting", "arm"})
    lines = ["| setting | arm | " + " | ".join(metrics) + " |",
             "|---" * (len(metrics) + 2) + "|"]
    for r in sorted(rows, key=lambda r: (r["setting"], r["arm"])):
        cells = [f"{r[m]:.4g}" if isinstance(r.get(m), float) else str(r.get(m, ""))
                 for m in metrics]
        lines.append(f"| {r['setting']} | {r['arm']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    prog = "lemo.experiments.passkey_sweep"
    args, cfg = parse_args(argv, SweepConfig, prog=prog, description=DESCRIPTION,
                           parser=build_parser(prog, DESCRIPTION))
    device = pick_device(cfg.device)
    run_dir = make_run_dir(args.out, "lemo", "sweep")
    save_config(cfg, run_dir / "config.yaml")
    bench_dict = to_dict(cfg.bench)
    for overrides in settings(cfg.axes):  # fail on a bad key before any work starts
        job_configs(bench_dict, cfg.probe, overrides)
    jobs = [(o, arm, bench_dict, cfg.probe, device, cfg.threads) for o in settings(cfg.axes)
            for arm in cfg.arms]
    log.info("%d jobs on %d workers (%s)", len(jobs), cfg.workers, device)
    rows: list[dict] = []
    with mp.get_context("spawn").Pool(cfg.workers) as pool:
        for row in pool.imap_unordered(_job, jobs):
            rows.append(row)
            log.info("%d/%d %s", len(rows), len(jobs),
                     {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
            atomic_write_json(run_dir / "sweep.json", {"base": bench_dict, "rows": rows})
    atomic_write_text(run_dir / "sweep.md", _table(rows))
    log.info("wrote %s", run_dir / "sweep.md")
    return 0


if __name__ == "__main__":
    run(main)
