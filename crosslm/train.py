"""`python -m crosslm.train`: run one CrossLM federation (server LLM + heterogeneous client
SLMs) and write its results to a run dir.

Writes config.yaml, ckpt.pt (every `checkpoint_every` rounds and at the end; rerunning with the
same --out resumes from it), history.json (per round: score statistics, LLM loss, selected-set
size), adapter.safetensors (the LLM's LoRA weights) and metrics.json (per-client SLM test and
out-of-family accuracy; the LLM's label fidelity, generative-classifier accuracy and held-out
perplexity, before and after). `--mode` picks an arm (crosslm, kd, standalone, fedavg).
`--engine flower` runs the same Strategy and clients on Flower's Simulation Engine (Ray),
`flower-inprocess` on an in-process Flower grid; neither checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crosslm.config import CrossLMConfig
from crosslm.pipeline import Setup, build_setup, client_metrics, llm_metrics, make_arm
from shared.cli import build_parser, parse_args, run
from shared.config import save_config, to_dict
from shared.errors import ConfigError
from shared.fl import run_rounds
from shared.io import Checkpointer, atomic_write_json, check_resume, make_run_dir, save_weights
from shared.log import get_logger
from shared.runtime import set_seed

log = get_logger("crosslm.train")

# keys a resumed run may change: neither alters a round's computation. `fl.rounds` may not:
# the last round skips generating the next query set, so a longer run is not an extension.
RESUME_FREE = ("checkpoint_every", "threads")


def check_mode(run_dir: Path, mode: str, state: dict | None = None) -> None:
    """A run dir's checkpoint (`state`, else read from it) resumes only in the arm (`--mode`)
    it was trained in: a one-line ConfigError otherwise."""
    state = state if state is not None else Checkpointer(run_dir).load()
    if state is not None and state["mode"] != mode:
        raise ConfigError(f"--out {run_dir}: its checkpoint was trained with --mode "
                          f"{state['mode']} (now {mode}); resume with that mode or use "
                          "another --out")


def train(cfg: CrossLMConfig, run_dir: Path, setup: Setup, mode: str = "crosslm",
          engine: str = "loop") -> dict:
    """Train one arm (resuming from run_dir/ckpt.pt with engine=loop); return the summary."""
    kinds = ["minilm"] if mode == "fedavg" else None
    strategy, client = make_arm(setup, mode, kinds=kinds)
    has_llm = mode != "fedavg"
    ckpt = Checkpointer(run_dir)
    private: dict[int, dict] = {}
    history: list[dict] = []
    start, before = 1, None
    state = ckpt.load() if engine == "loop" else None
    if state is not None:
        check_resume(run_dir, cfg, RESUME_FREE, saved=state["config"], resuming=True)
        check_mode(run_dir, mode, state)
        strategy.load_state_dict(state["strategy"])
        private, history, start = state["private"], state["history"], state["round"] + 1
        before = state["llm_before"]
        log.info("resuming from round %d", state["round"])
    save_config(cfg, run_dir / "config.yaml")
    if has_llm and before is None:
        before = llm_metrics(setup, strategy.llm, strategy.prompts, 0, cfg.gen.per_label)
    ids = list(range(cfg.data.num_clients))

    def on_round(rnd: int, record: dict) -> None:
        record.update(getattr(strategy, "round_log", {}).get(rnd, {}))
        history.append(record)
        log.info("round %d/%d: %s", rnd, cfg.fl.rounds,
                 {k: v for k, v in record.items() if k in ("mean_score", "pool", "llm_loss")})
        if rnd % cfg.checkpoint_every == 0 or rnd == cfg.fl.rounds:
            ckpt.save({"round": rnd, "mode": mode, "strategy": strategy.state_dict(),
                       "private": private, "history": history, "config": to_dict(cfg),
                       "llm_before": before})

    if engine == "loop":
        run_rounds(strategy, client, ids, cfg.fl.rounds, private=private, start_round=start,
                   on_round=on_round)
        slm = client_metrics(client, private, strategy.global_state)
    else:
        from shared.fl.flower import make_client_app, make_server_app, run_flower

        server_app, result = make_server_app(strategy, cfg.fl.rounds)
        run_flower(server_app, make_client_app(client), len(ids),
                   engine="simulation" if engine == "flower" else "inprocess")
        for rec in result["history"]:
            rec.update(getattr(strategy, "round_log", {}).get(rec["round"], {}))
        history = result["history"]
        ev = result["evaluate"]  # the SLMs stayed on the Flower nodes: their own evaluation
        slm = {k: [float(ev[c][k]) for c in ids] for k in ev[ids[0]]}
    summary = {"mode": mode, "engine": engine, "slm": slm,
               "acc_mean": float(np.mean(slm["acc"])), "acc_worst": float(np.min(slm["acc"]))}
    if "ood_acc" in slm:
        summary["ood_acc_mean"] = float(np.mean(slm["ood_acc"]))
    if has_llm:
        summary["llm_before"] = before
        summary["llm_after"] = llm_metrics(setup, strategy.llm, strategy.prompts,
                                           cfg.fl.rounds + 1, cfg.gen.per_label)
        lora = {k: v for k, v in strategy.llm.named_parameters() if v.requires_grad}
        save_weights(run_dir / "adapter.safetensors", lora,
                     {"kind": "crosslm-lora", "config": to_dict(cfg.llm)})
    atomic_write_json(run_dir / "history.json", history)
    atomic_write_json(run_dir / "metrics.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("crosslm.train", __doc__, default_config="configs/crosslm/topics.yaml")
    parser.add_argument("--mode", choices=["crosslm", "kd", "standalone", "fedavg"],
                        default="crosslm", help="which arm to run (default: crosslm)")
    parser.add_argument("--engine", choices=["loop", "flower", "flower-inprocess"],
                        default="loop", help="round engine (default: the in-process loop)")
    args, cfg = parse_args(argv, CrossLMConfig, prog="crosslm.train", description=__doc__,
                           quick={"fl.rounds": 2, "slm.epochs": 8, "gen.per_label": 12},
                           parser=parser)
    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if args.out is not None:  # a changed config or arm never resumes an old run (checked first)
        check_resume(args.out, cfg, RESUME_FREE)
        if args.engine == "loop":
            check_mode(Path(args.out), args.mode)
    setup = build_setup(cfg)  # reads and checks the data and the LLM before the run dir
    run_dir = make_run_dir(args.out, "crosslm", "train")
    log.info("run dir %s", run_dir)
    s = train(cfg, run_dir, setup, args.mode, args.engine)
    log.info("SLM accuracy mean %.4f worst %.4f", s["acc_mean"], s["acc_worst"])
    if "llm_after" in s:
        log.info("LLM fidelity %.3f -> %.3f, generative accuracy %.3f -> %.3f, perplexity "
                 "%.3f -> %.3f", s["llm_before"]["fidelity"], s["llm_after"]["fidelity"],
                 s["llm_before"]["gen_acc"], s["llm_after"]["gen_acc"],
                 s["llm_before"]["perplexity"], s["llm_after"]["perplexity"])
    return 0


if __name__ == "__main__":
    run(main)
