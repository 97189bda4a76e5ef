"""`python -m robwe.train`: train a RobWE federation (FedRep + head and slice watermarks,
server-side detection of tampered watermarks) and write per-client results to a run dir.

Writes config.yaml, ckpt.pt (every `checkpoint_every` rounds and at the end; rerunning with
the same --out resumes from it, under the same config but for `RESUME_FREE`), history.json
(per round: sampled, rejected, upload bit accuracies) and metrics.json (per client:
personalised accuracy, head and slice bit accuracy; detection rate and false flags).
`--engine flower` runs the same Strategy and clients on Flower (`flwr`): `flower` uses
Flower's Simulation Engine (needs Ray), `flower-inprocess` an in-process Flower grid;
neither checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robwe.config import RobWEConfig
from robwe.federation import Federation, build_federation, evaluate_clients, under_embedded
from shared.cli import build_parser, parse_args, run
from shared.config import save_config, to_dict
from shared.fl import run_rounds
from shared.io import Checkpointer, atomic_write_json, check_resume, make_run_dir
from shared.log import get_logger
from shared.runtime import set_seed

log = get_logger("robwe.train")
# what a resumed run may change: more rounds (every round's sampling and training depend on
# the round number, not on the total), checkpoint frequency, threads, cpu/auto
RESUME_FREE = ("fl.rounds", "checkpoint_every", "threads", "device")


def summarise(fed: Federation, private: dict) -> dict:
    """Per-client metrics and the run's detection figures (JSON-ready)."""
    ev = evaluate_clients(fed, private)
    mal, banned = set(fed.malicious), set(fed.strategy.banned)
    honest = np.array([c not in mal for c in fed.client_ids])
    out = {"clients": {k: v.tolist() for k, v in ev.items()},
           "malicious": sorted(mal), "banned": sorted(banned),
           "acc_honest_mean": float(ev["acc"][honest].mean()),
           "false_flag_rate": len(banned - mal) / int(honest.sum()),
           "detection_rate": len(banned & mal) / len(mal) if mal else None}
    for k in ("head_bits", "slice_bits"):
        if not np.isnan(ev[k]).all():
            out[f"{k}_honest_min"] = float(ev[k][honest].min())
    # no silent gaps: every client whose watermark is not fully embedded, by name
    out["under_embedded"] = {str(c): b for c, b in under_embedded(fed, ev).items()}
    if out["under_embedded"]:
        log.warning("%d client(s) below %.2f watermark bits: %s", len(out["under_embedded"]),
                    fed.cfg.watermark.target_bits, out["under_embedded"])
    reg = fed.strategy.registry
    if reg is not None:
        out["ownership"] = {"registered": len(reg.entries), "closed_at_round": reg.closed_at,
                            "slice_first_verified": {c: v.get("slice") for c, v in
                                                     sorted(reg.first_verified.items())}}
    out["caught_up"] = {str(r): c for r, c in fed.strategy.caught_up.items()}
    return out


def train(cfg: RobWEConfig, run_dir: Path, engine: str = "loop",
          fed: Federation | None = None) -> dict:
    """Train (resuming from run_dir/ckpt.pt if present); return the summary. `fed`: the
    federation already built from `cfg` (its data read and checked), else built here."""
    fed = fed if fed is not None else build_federation(cfg)
    ckpt = Checkpointer(run_dir)
    private: dict[int, dict] = {}
    history: list[dict] = []
    start = 1
    state = ckpt.load() if engine == "loop" else None
    if state is not None:
        check_resume(run_dir, cfg, RESUME_FREE, saved=state["config"], resuming=True)
        fed.strategy.load_state_dict(state["strategy"])
        private, history, start = state["private"], state["history"], state["round"] + 1
        log.info("resuming from round %d", state["round"])
    save_config(cfg, run_dir / "config.yaml")

    def save(rnd: int) -> None:
        ckpt.save({"round": rnd, "strategy": fed.strategy.state_dict(), "private": private,
                   "history": history, "config": to_dict(cfg)})

    def on_round(rnd: int, record: dict) -> None:
        record["upload_bits"] = fed.strategy.upload_bits.get(rnd, {})
        history.append(record)
        if record["rejected"]:
            log.info("round %d: flagged and banned %s", rnd, record["rejected"])
        if rnd % cfg.checkpoint_every == 0 or rnd == cfg.fl.rounds:
            save(rnd)

    if engine == "loop":
        run_rounds(fed.strategy, fed.client, fed.client_ids, cfg.fl.rounds, private=private,
                   start_round=start, on_round=on_round)
    else:
        from shared.fl.flower import make_client_app, make_server_app, run_flower

        server_app, result = make_server_app(fed.strategy, cfg.fl.rounds)
        run_flower(server_app, make_client_app(fed.client), fed.data.num_clients,
                   engine="simulation" if engine == "flower" else "inprocess")
        history = result["history"]
        # the heads stayed on the Flower nodes: collect the clients' own evaluation instead
        atomic_write_json(run_dir / "flower_evaluate.json", result["evaluate"])
        private = {}
    atomic_write_json(run_dir / "history.json", history)
    summary = summarise(fed, private) if engine == "loop" else {"evaluate": "flower_evaluate.json"}
    atomic_write_json(run_dir / "metrics.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("robwe.train", __doc__, default_config="configs/robwe/mnist5k.yaml")
    parser.add_argument("--engine", choices=["loop", "flower", "flower-inprocess"],
                        default="loop", help="round engine (default: the in-process loop)")
    args, cfg = parse_args(argv, RobWEConfig, prog="robwe.train", description=__doc__,
                           quick={"fl.rounds": 5},
                           parser=parser)
    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if args.out is not None:  # an existing run: before the data and its config.yaml
        check_resume(args.out, cfg, RESUME_FREE)
    fed = build_federation(cfg)  # reads and checks the data before the run dir is made
    run_dir = make_run_dir(args.out, "robwe", "train")
    log.info("run dir %s", run_dir)
    s = train(cfg, run_dir, args.engine, fed)
    if "acc_honest_mean" in s:
        log.info("honest accuracy %.4f, head bits min %s, slice bits min %s, detection %s, "
                 "false flags %.3f", s["acc_honest_mean"], s.get("head_bits_honest_min"),
                 s.get("slice_bits_honest_min"), s["detection_rate"], s["false_flag_rate"])
    return 0


if __name__ == "__main__":
    run(main)
