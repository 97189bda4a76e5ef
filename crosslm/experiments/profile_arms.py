"""Where one KD and one CrossLM arm spend their time: a per-component profile on this machine.

`python -m crosslm.experiments.profile_arms --set device=cpu --set llm.layers=1 ...`
(default config: configs/crosslm/device.yaml, one task and seed; `--set` as in the recipes).

Runs `setup`, the `before` LLM metrics, then the `kd` and `crosslm` arms of `crosslm.bench`
with timers around every step of the loop, and prints per arm: seconds and call / step counts
of LLM generation (query sets; fidelity samples), SLM features, SLM training, SLM scoring, the
LLM update, SLM evaluation, generative-classifier accuracy and perplexity. Then it counts the
aten operators of one step of each kind (a CPU stand-in for the GPU kernel launches that
bound these small networks' GPU steps) and of those that read a value back to the host: a
KV-cached decoding step with and without the LoRA adapters, the token draw, a CNN / BiLSTM
SLM step and a LoRA update step (`--ops-only`: only these). `--json` writes it all.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import crosslm.federation as fed_mod
import crosslm.generation as gen_mod
import crosslm.pipeline as pipe_mod
from crosslm.bench import BenchConfig, _arm_cfg, run_arm
from crosslm.generation import label_prompts
from crosslm.models import build_slm, byte_features
from crosslm.pipeline import build_setup, fresh_llm, llm_metrics_before
from crosslm.slm import train_slm
from shared.config import load_config

STATS: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))


def _timed(module, name: str, label: str, extra=None):
    """Wrap module.name so that its calls add to STATS[label] (seconds, calls, extra counts)."""
    fn = getattr(module, name)

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        STATS[label]["secs"] += time.perf_counter() - t0
        STATS[label]["calls"] += 1
        for key, val in (extra(*a, **k) if extra else {}).items():
            STATS[label][key] += val
        return out

    setattr(module, name, wrapper)


def instrument() -> None:
    def decode(model, codec, prompts, per_label, max_new_tokens, *a, **k):
        batched = k.get("batch_labels", a[-1] if len(a) >= 5 else False)
        return {"decode_steps": max_new_tokens * (1 if batched else len(prompts)),
                "samples": per_label * len(prompts)}

    def slm_steps(model, x, targets, weights, epochs, lr, batch, seed):
        return {"slm_steps": epochs * math.ceil(len(x) / batch), "examples": len(x)}

    def upd(model, prompts, conts, weights, bottom, general, steps, *a, **k):
        return {"update_steps": steps}

    _timed(fed_mod, "sample_label_conditioned", "LLM generation (query sets)", decode)
    _timed(gen_mod, "sample_label_conditioned", "LLM generation (fidelity samples)", decode)
    _timed(fed_mod, "train_slm", "SLM training", slm_steps)
    _timed(fed_mod, "label_scores", "SLM scoring")
    _timed(fed_mod, "update_llm", "LLM update", upd)
    _timed(fed_mod, "clean_samples", "dedup / length filter")
    _timed(pipe_mod, "generative_accuracy", "eval: generative classifier")
    _timed(pipe_mod, "evaluate_perplexity", "eval: perplexity")
    _timed(pipe_mod, "label_fidelity", "eval: oracle fidelity")
    _timed(fed_mod.CrossLMClient, "features", "SLM features")
    _timed(fed_mod.CrossLMClient, "evaluate", "eval: SLM test accuracy")


# operators that read a tensor's value on the host: each one waits for the device queue
HOST_READS = {"_local_scalar_dense", "is_nonzero", "nonzero", "equal", "item"}


class OpCounter(TorchDispatchMode):
    """Counts aten operators (each one GPU kernel launch or more on a GPU) and, apart, the
    ones that read a value back to the host."""

    def __init__(self):
        super().__init__()
        self.n, self.host_reads = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        self.host_reads += func.__name__.split(".")[0] in HOST_READS
        return func(*args, **(kwargs or {}))


@contextmanager
def count_ops():
    c = OpCounter()
    with c:
        yield c


def step_ops(setup, cfg: BenchConfig) -> dict[str, list[int]]:
    """[aten operators, host reads] per step of each kind at the config's sizes: a decoding
    step of the left-padded all-label batch (LoRA on and off), the token draw, an SLM step of
    each byte kind (one batch, optimiser included) and a LoRA update step."""
    llm = fresh_llm(setup, _arm_cfg(cfg, "crosslm", setup.cfg.data.task, setup.cfg.seed))
    prompts = label_prompts(setup.codec, setup.fed.task.descriptions(), cfg.llm.conditioning,
                            cfg.gen.prompt_template)
    out = {}
    with torch.no_grad():
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        kw = gen_mod._cache_kwarg(llm)
        tok = ids[:, -1:]
        mask1 = torch.cat([mask, torch.ones_like(tok)], 1)
        for name, ctx in (("LoRA on", nullcontext), ("LoRA off", llm.disable_adapter)):
            first = llm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            with ctx(), count_ops() as c:
                llm(input_ids=tok, attention_mask=mask1, position_ids=pos[:, -1:] + 1,
                    use_cache=True, **{kw: gen_mod._cache_of(first)})
            out[f"decode step (all labels, {name})"] = [c.n, c.host_reads]
        logits = torch.randn(len(prompts), 272)
        q = gen_mod._exponentials(torch.Generator().manual_seed(0), 1, len(prompts), 272,
                                  torch.device("cpu"))
        with count_ops() as c:
            gen_mod._draw(logits, 256, 0.9, 0.95, q[0])
        out["token draw"] = [c.n, c.host_reads]
    x = byte_features(["some text"] * 64, cfg.slm.max_bytes)
    y = torch.eye(5)[torch.arange(64) % 5]
    for kind in ("cnn", "bilstm"):
        m = build_slm(kind, 5)
        with count_ops() as c:
            train_slm(m, x, y, torch.ones(64), 1, 1e-3, 64, 0)
        out[f"SLM step ({kind}, one batch and epoch end)"] = [c.n, c.host_reads]
    with count_ops() as c:
        fed_mod.update_llm(llm, [prompts[0]] * 4, [[97] * 20] * 4, np.ones(4),
                           np.zeros(4, dtype=bool), setup.general_train, 1, 4, 1e-4, "lm",
                           1.0, 0.0, 64, np.random.default_rng(0))
    out["LLM update step (samples + guard)"] = [c.n, c.host_reads]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/crosslm/device.yaml")
    ap.add_argument("--task", default="topics")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--json", default="")
    ap.add_argument("--ops-only", action="store_true", help="only the operator counts")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, BenchConfig, args.sets)
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    setup = build_setup(_arm_cfg(cfg, "crosslm", args.task, args.seed))
    report: dict = {"setup_secs": time.perf_counter() - t0, "sets": args.sets,
                    "task": args.task, "arms": {}}
    instrument()
    for arm in () if args.ops_only else ("before", "kd", "crosslm"):
        STATS.clear()
        acfg = _arm_cfg(cfg, "crosslm" if arm == "before" else arm, args.task, args.seed)
        t0 = time.perf_counter()
        if arm == "before":
            llm_metrics_before(setup, acfg)
        else:
            run_arm(setup, arm, acfg)
        total = time.perf_counter() - t0
        comp = {k: dict(v) for k, v in STATS.items()}
        inner = {"SLM features", "eval: oracle fidelity"}  # timed inside another component
        accounted = sum(v["secs"] for k, v in comp.items() if k not in inner)
        report["arms"][arm] = {"total_secs": total, "components": comp,
                               "other_secs": total - accounted}
        print(f"\n== {arm}: {total:.1f} s")
        for k, v in sorted(comp.items(), key=lambda kv: -kv[1]["secs"]):
            extra = ", ".join(f"{n} {int(c)}" for n, c in v.items() if n not in ("secs",))
            print(f"  {k:36s} {v['secs']:7.1f} s  {100 * v['secs'] / total:5.1f}%  ({extra})")
        print(f"  {'other (loop, messages, selection)':36s} {total - accounted:7.1f} s")
    report["ops_per_step"] = step_ops(setup, cfg)
    print("\naten operators per step:", report["ops_per_step"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
