"""Why CrossLM's SLMs end below data-free KD's, and why the LLM's generative-classifier accuracy
stays put while its label fidelity rises.

`python -m crosslm.experiments.kd_gap --task docs-binary --seeds 0 --out <dir>` (the quick
bench's sizes from configs/crosslm/bench.yaml + `QUICK`; `--set key=value` adds overrides,
`--arms` picks arms among standalone, kd, kd-nofilter, crosslm, crosslm-nofeedback,
crosslm-noguard; `--variant NAME
key=value ...` adds a CrossLM arm with more overrides; `--config
configs/crosslm/device.yaml --no-quick` starts from the device config instead;
`--oracle-acc` only measures the label-fidelity judge on the real test set, MiniLM or byte).

Per arm and round it records the LLM's query set after cleaning: how many distinct samples
survive, their diversity (distinct character 6-grams over all 6-grams), how many are near
copies of the synthetic set the clients already train on (character 5-gram Jaccard >= 0.5
with one of its texts), their oracle-judged fidelity, the aggregated SLM score's mean and
spread, and how many passes over the query set the round's LoRA update makes. After the
run: each client's accuracy and, for the LLM, the generative classifier's NLL matrix on
the test texts before and after (accuracy, how often it predicts each label, the mean NLL
change under the true and the other labels' prompts, and the accuracy once each prompt's
mean NLL over the test texts is subtracted).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from crosslm.bench import QUICK, BenchConfig, _arm_cfg
from crosslm.feedback import aggregate_scores, select_for_clients
from crosslm.generation import sequence_nll
from crosslm.pipeline import build_setup, client_metrics, fresh_llm, make_arm
from shared.config import load_config
from shared.fl import run_rounds


def ngrams(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(max(0, len(text) - n + 1))}


def distinct_ratio(texts: list[str], n: int = 6) -> float:
    """Distinct character n-grams over all character n-grams of `texts` (1: no repeats)."""
    grams = [t[i:i + n] for t in texts for i in range(max(0, len(t) - n + 1))]
    return len(set(grams)) / max(1, len(grams))


def near_copy_share(texts: list[str], pool: list[str], n: int = 5, thr: float = 0.5) -> float:
    """Share of `texts` whose character n-gram Jaccard with some text of `pool` is >= thr."""
    if not texts or not pool:
        return 0.0
    ps = [ngrams(p.lower(), n) for p in pool]
    hits = 0
    for t in texts:
        g = ngrams(t.lower(), n)
        hits += any(len(g & p) / max(1, len(g | p)) >= thr for p in ps)
    return hits / len(texts)


def nll_matrix(llm, codec, prompts, texts: list[str], max_tokens: int = 96) -> np.ndarray:
    """(n, C) mean token NLL of each text after each label's prompt (what
    `evaluation.generative_accuracy` takes the argmin of)."""
    C = len(prompts)
    conts = [codec.encode(t)[:max_tokens] for t in texts]
    nll = sequence_nll(llm, [prompts[c] for _ in conts for c in range(C)],
                       [x for x in conts for _ in range(C)])
    return nll.reshape(len(texts), C)


def gen_classifier(before: np.ndarray, after: np.ndarray, y: np.ndarray) -> dict:
    C = before.shape[1]
    true = np.eye(C, dtype=bool)[y]
    d = after - before
    out = {"delta_nll_true_prompt": float(d[true].mean()),
           "delta_nll_other_prompts": float(d[~true].mean())}
    for name, m in (("before", before), ("after", after)):
        pred = m.argmin(1)
        out[f"acc_{name}"] = float((pred == y).mean())
        out[f"pred_share_{name}"] = (np.bincount(pred, minlength=C) / len(y)).round(3).tolist()
        out[f"acc_debiased_{name}"] = float(((m - m.mean(0)).argmin(1) == y).mean())
        out[f"margin_{name}"] = float((m[~true].reshape(len(y), C - 1).mean(1) - m[true]).mean())
    return out


def oracle_accuracy(cfg, task: str, seed: int) -> float:
    """The label-fidelity judge's accuracy on the real test set, trained as `build_setup`
    trains it (without building the LLM)."""
    from crosslm.data import federate, load_task
    from crosslm.evaluation import OracleJudge
    from crosslm.models import MiniLMEmbedder

    c = _arm_cfg(cfg, "crosslm", task, seed)
    d = c.data
    t = load_task(d.task, d.path, d.max_per_class, d.max_chars)
    fed = federate(t, d.num_clients, d.beta, d.private_per_client, d.test_frac,
                   d.oracle_frac, seed)
    embedder = MiniLMEmbedder(path=c.slm.minilm_dir) if c.oracle == "minilm" else None
    judge = OracleJudge(embedder, fed.texts(fed.oracle), t.labels[fed.oracle], t.num_classes,
                        f"{t.name}-oracle-s{seed}", seed, kind=c.oracle,
                        max_bytes=c.slm.max_bytes)
    return float((judge.predict(fed.texts(fed.test)) == t.labels[fed.test]).mean())


def run_arm(setup, cfg, arm: str) -> dict:
    mode = {"kd-nofilter": "kd"}.get(arm, arm if arm in ("kd", "standalone") else "crosslm")
    strategy, client = make_arm(setup, mode, cfg)
    rounds: list[dict] = []
    orig = strategy.aggregate_fit

    def aggregate_fit(rnd, updates):
        texts, y = list(strategy.query_texts), np.asarray(strategy.query_labels)
        pool_before = list(strategy.pool_texts)
        ups = [u for u in updates if "scores" in u.state]
        if not ups or not texts:  # standalone: no synthetic data
            return orig(rnd, updates)
        s = aggregate_scores(np.stack([u.state["scores"].numpy() for u in ups]),
                             np.array([u.num_examples for u in ups], np.float64))
        sel = select_for_clients(s, y, cfg.gen.keep_top)
        fid = setup.oracle.predict(texts) == y
        L = cfg.llm
        rounds.append({
            "round": rnd, "raw": cfg.gen.per_label * len(strategy.prompts), "kept": len(texts),
            "distinct6": distinct_ratio(texts), "near_copy_of_pool": near_copy_share(
                texts, pool_before), "oracle_fidelity": float(fid.mean()),
            "oracle_fidelity_selected": (float(fid[sel].mean()) if cfg.feedback.enabled
                                         else None),  # no feedback: a random selection
            "score_mean": float(s.mean()), "score_std": float(s.std()),
            "update_passes": (L.steps * min(L.batch, len(texts)) / max(1, len(texts))
                              if mode == "crosslm" else 0.0)})
        return orig(rnd, updates)

    strategy.aggregate_fit = aggregate_fit
    private: dict = {}
    run_rounds(strategy, client, list(range(cfg.data.num_clients)), cfg.fl.rounds, private)
    ev = client_metrics(client, private)
    pool = strategy.pool_texts
    return {"acc": ev["acc"], "acc_mean": float(np.mean(ev["acc"])), "rounds": rounds,
            "pool": len(pool), "pool_distinct6": distinct_ratio(pool),
            "pool_oracle_fidelity": (float((setup.oracle.predict(pool)
                                            == strategy.pool_labels).mean()) if pool
                                     else None),
            "llm": strategy.llm, "prompts": strategy.prompts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="*", default=["kd", "crosslm", "crosslm-nofeedback"])
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--task", default="docs-binary")
    ap.add_argument("--max-test", type=int, default=200)
    ap.add_argument("--variant", nargs="+", action="append", default=[],
                    help="NAME key=value ...: one more CrossLM arm with these overrides")
    ap.add_argument("--config", default="configs/crosslm/bench.yaml")
    ap.add_argument("--no-quick", action="store_true", help="leave the QUICK overlay out")
    ap.add_argument("--oracle-acc", action="store_true",
                    help="only print the judge's accuracy on the real test set")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    base = ([] if args.no_quick else QUICK) + args.sets
    cfg = load_config(args.config, BenchConfig, base)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.oracle_acc:
        acc = {seed: oracle_accuracy(cfg, args.task, seed) for seed in args.seeds}
        print(f"{args.task}: judge accuracy on the real test set {acc}", flush=True)
        (out / f"oracle_{args.task}.json").write_text(json.dumps(acc))
        return 0
    results: dict = {}
    for seed in args.seeds:
        setup = build_setup(_arm_cfg(cfg, "crosslm", args.task, seed))
        fed = setup.fed
        test = np.random.default_rng([seed, 31]).permutation(fed.test)[:args.max_test]
        texts, y = fed.texts(test), fed.task.labels[test]
        before = None
        arms = [(a, a, cfg) for a in args.arms] + [
            (v[0], "crosslm", load_config(args.config, BenchConfig, base + v[1:]))
            for v in args.variant]
        for arm, kind, vcfg in arms:
            acfg = _arm_cfg(vcfg, kind, args.task, seed)
            res = run_arm(setup, acfg, kind)
            llm, prompts = res.pop("llm"), res.pop("prompts")
            if before is None:
                before = nll_matrix(fresh_llm(setup, acfg), setup.codec, prompts, texts)
            res["gen_classifier"] = gen_classifier(
                before, nll_matrix(llm, setup.codec, prompts, texts), y)
            results.setdefault(arm, {})[seed] = res
            print(f"seed {seed} {arm}: " + json.dumps(res), flush=True)
    (out / "probe.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
