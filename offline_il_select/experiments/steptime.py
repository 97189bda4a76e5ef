"""Per-step training cost of ILID vs BC on one device (CPU or CUDA), with the real losses.

    python -m offline_il_select.experiments.steptime [--device cuda] [--steps 30000] [--out DIR]

Times are wall-clock seconds on CUDA and process CPU seconds on a CPU (one thread).

ILID's extra cost over BC-E (ILID Sec. 5, Alg. 1): two discriminators (steps / 10 each, the
paper's 100k : 1M), one pass of d(s) over all of D_b, and a policy step on a D_u batch + a D_s
batch (one forward over 2B rows) instead of one batch of B rows. This tool times each piece on
synthetic tensors of the bench's shapes (HalfCheetah: S = 17, A = 6, |D_b| = 1M, B = 128) and
projects the training-time ratio ILID / BC-E at `--steps` policy steps:

    (steps * t_ilid_step + 2 * steps / 10 * t_disc_step + t_d_over_D_b) / (steps * t_bc_step)

On a CPU a step's cost grows with its rows; on a GPU a step of this size costs its kernel
launches, so the 2B rows of ILID cost about what BC's B rows do. A DWBC step (its policy and
its discriminator) is timed too. `--members 1,12,48,0+12,24+6` also times one step of
`offline_il_select.ensemble.EnsembleBC` (the bench's --ensemble) for each entry "F" or "F+D":
F weighted-BC members (two terms each over a |D_b|-row storage) and D DWBC members (D_e = the
first 1,000 rows); per member it costs the single step divided by how well the batched kernels
amortise. Writes steptime.json.
"""

from __future__ import annotations

import sys
import time

import torch

from offline_il_select.bench import DISC_FRACTION, refuse_config
from offline_il_select.discriminator import train_discriminator
from offline_il_select.ensemble import DWBCSpec, EnsembleBC, Member
from offline_il_select.models import Discriminator, TanhGaussianPolicy
from offline_il_select.wbc import bc_loss, weighted_bc_loss
from shared.cli import build_parser, run
from shared.errors import ConfigError
from shared.il.dwbc import DWBC
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, setup_logging

log = get_logger("offline_il_select.experiments.steptime")


def _timed(fn, device: torch.device, n: int) -> float:
    """Seconds per call of fn() (after a warm-up): wall-clock, synchronising CUDA around the
    loop; on a CPU process CPU seconds (one thread: on a shared machine wall-clock mostly
    measures the other jobs)."""
    for _ in range(min(max(n // 10, 5), n)):
        fn()
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = clock()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (clock() - t) / n


def measure(device: torch.device, steps: int, n_b: int = 1_000_000, S: int = 17, A: int = 6,
            B: int = 128, n: int = 300) -> dict:
    """Per-step seconds of BC-E, ILID's policy step and a discriminator step; d over D_b."""
    g = torch.Generator(device=device).manual_seed(0)
    s = torch.randn(n_b, S, device=device)
    a = torch.rand(n_b, A, device=device, generator=g) * 2 - 1
    w = torch.rand(n_b, device=device, generator=g)
    pol = TanhGaussianPolicy(S, A).to(device)
    opt = torch.optim.Adam(pol.parameters(), lr=3e-4, weight_decay=5e-3)

    def idx():
        return torch.randint(n_b, (B,), generator=g, device=device)

    def step(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def bc():
        i = idx()
        step(bc_loss(pol, s[i], a[i]))

    def ilid():
        i, j = idx(), idx()
        step(weighted_bc_loss(pol, s[i], a[i], w[i], s[j], a[j], w[j]))

    disc = Discriminator(S).to(device)
    train_discriminator(disc, s[:1000], s, 10, B, 3e-4, 5e-3, g)  # warm-up
    t_disc = _timed(lambda: train_discriminator(disc, s[:1000], s, n, B, 3e-4, 5e-3, g),
                    device, 1) / n
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    disc.predict(s)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_pass = time.perf_counter() - t0
    t_bc, t_ilid = _timed(bc, device, n), _timed(ilid, device, n)
    n_e = min(1000, n_b)
    dwbc = DWBC({"observations": s[:n_e], "actions": a[:n_e]}, {"observations": s, "actions": a},
                pol.norm, B, 3e-4, 5e-3, 7.5)
    t_dwbc = _timed(lambda: step(dwbc.loss(pol, g)), device, n)
    ilid_total = steps * t_ilid + 2 * steps // DISC_FRACTION * t_disc + t_pass
    return {"device": str(device), "steps": steps, "bc_step_ms": 1e3 * t_bc,
            "ilid_step_ms": 1e3 * t_ilid, "disc_step_ms": 1e3 * t_disc,
            "dwbc_step_ms": 1e3 * t_dwbc,
            "d_over_D_b_s": t_pass, "n_b": n_b, "batch": B,
            "ilid_over_bc_step": t_ilid / t_bc,
            "ilid_over_bc_projected": ilid_total / (steps * t_bc)}


def parse_members(text: str) -> list[tuple[int, int]]:
    """'1,12,24+6' -> [(1, 0), (12, 0), (24, 6)]: (weighted-BC members, DWBC members)."""
    out = []
    for x in (x.strip() for x in text.split(",") if x.strip()):
        try:
            f, d = (int(v) for v in (x.split("+") + ["0"])[:2])
        except ValueError:
            raise ConfigError(f"--members: expected F or F+D integers, got '{x}'") from None
        if x.count("+") > 1:
            raise ConfigError(f"--members: expected F or F+D integers, got '{x}'")
        if f < 0 or d < 0 or f + d < 1:
            raise ConfigError(f"--members: '{x}' must count >= 1 member, none negative")
        out.append((f, d))
    return out


def measure_ensemble(device: torch.device, members: list[tuple[int, int]] | list[int],
                     n_b: int = 1_000_000, S: int = 17, A: int = 6, B: int = 128,
                     n: int = 300) -> dict[str, dict[str, float]]:
    """Per member count "F" or "F+D": milliseconds per `EnsembleBC` step (all members) and per
    member (`n // (F + D)` timed steps, at least 5)."""
    import numpy as np

    rng = np.random.default_rng(0)
    storage = (rng.standard_normal((n_b, S)).astype(np.float32),
               rng.uniform(-1, 1, (n_b, A)).astype(np.float32))
    torch.manual_seed(0)
    init = TanhGaussianPolicy(S, A).net.state_dict()
    n_e = min(1000, n_b)
    disc = DWBC({"observations": storage[0][:n_e], "actions": storage[1][:n_e]},
                {"observations": storage[0], "actions": storage[1]},
                TanhGaussianPolicy(S, A).norm, B, 3e-4, 5e-3, 7.5).disc.state_dict()
    terms = [(np.arange(n_b), np.ones(n_b, np.float32)),
             (np.arange(0, n_b, 7), np.ones(len(range(0, n_b, 7)), np.float32))]
    dw_terms = [(np.arange(n_e), np.ones(n_e, np.float32)),
                (np.arange(n_b), np.ones(n_b, np.float32))]
    out = {}
    for m in members:
        f, d = (m, 0) if isinstance(m, int) else m
        ms = [Member(0, terms, init, np.zeros(S), np.ones(S))] * f + [
            Member(0, dw_terms, init, np.zeros(S), np.ones(S), DWBCSpec(disc, 7.5))] * d
        ens = EnsembleBC(ms, [storage], 256, B, 3e-4, 5e-3, device)
        t = 1e3 * _timed(ens.step, device, max(n // (f + d), 5))
        out[f"{f}+{d}" if d else str(f)] = {"step_ms": t, "per_member_ms": t / (f + d)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = build_parser("offline_il_select.experiments.steptime", __doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30_000, help="policy steps for the projection")
    p.add_argument("--members", default="",
                   help="comma-separated member counts of the --ensemble step to time too: F "
                        "weighted-BC members or F+D with D DWBC members (e.g. 1,12,48,24+6)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    refuse_config(args, "steptime")
    if args.device not in (None, "cpu") and not args.device.startswith("cuda"):
        raise ConfigError(f"--device: use cpu or cuda, not '{args.device}'")
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device here")
    if args.steps < 1:
        raise ConfigError("--steps must be >= 1")
    members = parse_members(args.members)
    device = torch.device(args.device or "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)
    res = measure(device, args.steps, n=50 if args.quick else 300)
    if members:
        res["ensemble_step_ms"] = measure_ensemble(device, members, n=50 if args.quick else 300)
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
    run_dir = make_run_dir(args.out, "offline_il_select", "steptime")
    atomic_write_json(run_dir / "steptime.json", res)
    log.info("%s", {k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()})
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
