"""Why CrossLM's synthetic data helps the SLMs no more than data-free KD on the topic task.

`python -m crosslm.experiments.topics_vs_kd --seeds 0 1 2 --out results/crosslm/topics_vs_kd`
(the quick bench's sizes; `--set` adds config overrides, `--arms` picks arms, `--variant`
adds a CrossLM arm with extra overrides, e.g. `--variant topq feedback.weighting=topq`).

Per arm and seed it records: each client's test accuracy, the per-class test accuracy (mean
over clients), and for every round's query set the aggregated SLM score s and the selection,
from which it reports how many synthetic samples per label the clients train on, their
label fidelity judged by the held-out oracle (accepted vs rejected samples) and by the SLM
ensemble (argmax of the mean client p_SLM), and the mean s of accepted and rejected samples.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import crosslm.federation as fedmod
from crosslm.bench import QUICK, BenchConfig, _arm_cfg
from crosslm.pipeline import build_setup, client_metrics, make_arm
from crosslm.slm import predict_proba
from shared.config import load_config
from shared.fl import run_rounds


def run_probe(setup, cfg, mode: str) -> dict:
    strategy, client = make_arm(setup, mode, cfg)
    rounds: list[dict] = []
    orig_select = fedmod.select_for_clients

    def select(s, y, keep):
        sel = orig_select(s, y, keep)
        rounds.append({"texts": list(strategy.query_texts), "labels": np.asarray(y),
                       "scores": np.asarray(s), "sel": sel, "probs": last["probs"]})
        return sel

    last: dict = {}
    fedmod.select_for_clients = select
    try:
        private: dict = {}
        _run_with_probs(strategy, client, cfg, private, last)
    finally:
        fedmod.select_for_clients = orig_select
    ev = client_metrics(client, private)
    fed = setup.fed
    per_class = np.zeros(fed.task.num_classes)
    y_test = fed.task.labels[fed.test]
    for cid in range(fed.num_clients):
        model = client.model(cid, private.get(cid, {}))
        pred = predict_proba(model, client.features(cid, fed.texts(fed.test),
                                                    key=f"{fed.task.name}-test")).argmax(1)
        per_class += [(pred[y_test == c] == c).mean() for c in range(fed.task.num_classes)]
    per_class /= fed.num_clients
    return {"acc": ev["acc"], "per_class": per_class.tolist(), "rounds": rounds}


def _run_with_probs(strategy, client, cfg, private, last) -> None:
    """run_rounds, keeping the clients' full p_SLM(. | x~) of each query set (for the SLM
    ensemble's view of label fidelity; the scores the server uses are unchanged)."""
    orig_fit = client.fit

    def fit(cid, state, config, priv):
        upd = orig_fit(cid, state, config, priv)
        if "query_len" in state and state["query_len"].numel():
            rng = torch.get_rng_state()  # client.model reseeds torch: leave the run unchanged
            model = client.model(cid, priv)
            q = fedmod.tensors_to_texts(state["query_text"], state["query_len"])
            per = last.setdefault(int(config.get("round", 1)), {})
            per[cid] = predict_proba(model, client.features(cid, q))
            last["probs"] = np.mean(list(per.values()), axis=0)
            torch.set_rng_state(rng)
        return upd

    client.fit = fit
    run_rounds(strategy, client, list(range(cfg.data.num_clients)), cfg.fl.rounds, private)


def summarise(setup, res: dict) -> dict:
    C = setup.fed.task.num_classes
    acc_t, acc_y, rej_t, rej_y, s_acc, s_rej, ens = [], [], [], [], [], [], []
    for r in res["rounds"]:
        keep = np.zeros(len(r["labels"]), bool)
        keep[r["sel"]] = True
        acc_t += [t for t, k in zip(r["texts"], keep) if k]
        rej_t += [t for t, k in zip(r["texts"], keep) if not k]
        acc_y += r["labels"][keep].tolist()
        rej_y += r["labels"][~keep].tolist()
        s_acc += r["scores"][keep].tolist()
        s_rej += r["scores"][~keep].tolist()
        if r["probs"] is not None and len(r["probs"]) == len(keep):
            ens += (r["probs"][keep].argmax(1) == r["labels"][keep]).tolist()
    acc_y, rej_y = np.array(acc_y), np.array(rej_y)
    o_acc = setup.oracle.predict(acc_t) == acc_y
    o_rej = setup.oracle.predict(rej_t) == rej_y
    return {"acc": res["acc"], "acc_mean": float(np.mean(res["acc"])),
            "per_class": res["per_class"],
            "accepted_per_label": np.bincount(acc_y, minlength=C).tolist(),
            "oracle_fidelity_accepted": float(o_acc.mean()),
            "oracle_fidelity_rejected": float(o_rej.mean()),
            "oracle_fidelity_accepted_per_label": [float(o_acc[acc_y == c].mean())
                                                   for c in range(C)],
            "ensemble_fidelity_accepted": float(np.mean(ens)) if ens else None,
            "score_accepted": float(np.mean(s_acc)), "score_rejected": float(np.mean(s_rej))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=["kd", "crosslm"])
    ap.add_argument("--variant", nargs="+", action="append", default=[])
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--task", default="topics")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    cfg = load_config("configs/crosslm/bench.yaml", BenchConfig, QUICK + args.sets)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for seed in args.seeds:
        setup = build_setup(_arm_cfg(cfg, "crosslm", args.task, seed))
        arms = [(a, a, []) for a in args.arms] + [(v[0], "crosslm", v[1:])
                                                  for v in args.variant]
        for name, mode, extra in arms:
            acfg = _arm_cfg(load_config("configs/crosslm/bench.yaml", BenchConfig,
                                        QUICK + args.sets + extra), name if name in (
                                            "kd", "crosslm") else "crosslm", args.task, seed)
            row = summarise(setup, run_probe(setup, acfg, mode))
            results.setdefault(name, {})[seed] = row
            print(f"seed {seed} {name}: " + json.dumps(
                {k: (np.round(v, 3).tolist() if isinstance(v, (list, float)) else v)
                 for k, v in row.items()}), flush=True)
    (out / "probe.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
