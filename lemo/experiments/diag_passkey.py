"""`python -m lemo.experiments.diag_passkey`: why does LeMo lose passkey retrieval? (diagnostics)

One bench accuracy arm (`lemo.bench.accuracy_arm`'s model, data, seeds and fine-tuning loop),
then, on the fine-tuned (or untouched, `--set bench.ft_steps=0`) model:
- dense held-out perplexity, passkey accuracy and the answer bytes' mean NLL at each length
  in `lens` (the NLL is continuous where accuracy is 0/1);
- the same with token elimination at inference (`eliminate_in_eval`) for every keep ratio in
  `eval_keeps` (no MLP pruning: it only changes backward), plus which blocks each eliminating
  layer keeps on passkey examples (`lemo.bench.passkey_selection`);
- every `curve_every` steps during fine-tuning: the answer NLL of `curve_examples` held-out
  passkey examples (dense, and under the arm's own elimination for LeMo arms), and per step the
  training loss with a flag saying whether the window was a passkey example.
Writes diag.json to --out.

examples:
  python -m lemo.experiments.diag_passkey --set arm=base --set bench.ft_steps=0 \\
      --out runs/lemo/diag_e1
  python -m lemo.experiments.diag_passkey --set arm=lora --out runs/lemo/diag_e2
  python -m lemo.experiments.diag_passkey --set arm=lemo_full --set probe.oracle=true \\
      --out runs/lemo/diag_e3
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lemo.bench import BenchConfig, accuracy_arms, passkey_selection
from lemo.config import DataConfig, TrainConfig
from lemo.data import ANSWER_LEN, finetune_batch, load_text, make_passkey_batch, passkey_accuracy
from lemo.experiments.probes import ProbeConfig, install_probe, oracle_flags
from lemo.finetune import build_finetune_model, finetune
from lemo.patch import configure_lemo
from shared.cli import build_parser, parse_args, run
from shared.config import to_dict
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger
from shared.runtime import set_seed
from shared.text import evaluate_perplexity

log = get_logger("lemo.diag_passkey")

DESCRIPTION = __doc__.split("\n\n")[0]


@dataclass
class DiagConfig:
    """What `lemo.experiments.diag_passkey` runs."""

    arm: str = "lemo_full"  # a lemo.bench accuracy arm: base, lora, lemo_full
    bench: BenchConfig = field(default_factory=BenchConfig)  # the bench setting
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # the selection rule in training
    lens: list[int] = field(default_factory=lambda: [2048])  # evaluated lengths
    eval_keeps: list[float] = field(default_factory=lambda: [0.4, 0.8])  # elimination at eval
    # selection rules at eval: "topk" (the training rule: the paper's or the bench probe's),
    # "paper" (the paper's top-k, probes off), "oracle" (needle + question blocks forced)
    eval_rules: list[str] = field(default_factory=lambda: ["topk"])
    curve_every: int = 25  # answer-NLL curve during fine-tuning (0: off)
    curve_examples: int = 8
    threads: int = 1


@torch.no_grad()
def answer_nll(model, keys: np.ndarray, device: str = "cpu") -> float:
    """Mean NLL (nats / byte) of the answer's ANSWER_LEN bytes, teacher-forced, eval mode."""
    was = model.training
    model.eval()
    tot = []
    for r in keys:
        x = torch.from_numpy(r[None]).to(device)
        logits = model(input_ids=x).logits[0, -ANSWER_LEN - 1:-1].float()
        tot.append(float(torch.nn.functional.cross_entropy(logits, x[0, -ANSWER_LEN:])))
    model.train(was)
    return float(np.mean(tot))


def passkey_windows(tokens: np.ndarray, tc: TrainConfig) -> list[bool]:
    """Replays `finetune`'s batch generator: was step i's window a passkey example?"""
    rng = np.random.default_rng(tc.seed)
    flags = []
    for _ in range(tc.steps):
        x = finetune_batch(tokens, tc.data.seq_len, tc.data.batch_size, tc.data.passkey_mix, rng)
        flags.append(bool(bytes(x[0].astype(np.uint8).tolist()).find(b"The pass key is") >= 0))
    return flags


def evaluate(model, dc: DiagConfig, val: np.ndarray, keys: dict[int, np.ndarray],
             device: str) -> dict:
    bc = dc.bench
    out = {}
    for s, k in keys.items():
        out[f"ppl@{s}"] = evaluate_perplexity(model, val, s, bc.ppl_windows, device)
        out[f"passkey@{s}"] = passkey_accuracy(model, k, batch_size=bc.passkey_batch,
                                               device=device)
        out[f"answer_nll@{s}"] = answer_nll(model, k[:20], device)
    return out


def main(argv: list[str] | None = None) -> int:
    prog = "lemo.experiments.diag_passkey"
    args, dc = parse_args(argv, DiagConfig, prog=prog, description=DESCRIPTION,
                          parser=build_parser(prog, DESCRIPTION))
    torch.set_num_threads(dc.threads)
    bc, device = dc.bench, "cpu"
    set_seed(bc.seed)
    run_dir = make_run_dir(args.out, "lemo", "diag")
    t0 = time.perf_counter()
    train = load_text(None, "train", "text", 4_000_000)
    val = load_text(None, "val", "text", 2_000_000)
    lemo_cfg, model_cfg, tuned = accuracy_arms(bc)[dc.arm]
    tc = TrainConfig(seed=bc.seed, device=device, steps=bc.ft_steps if tuned else 0, lr=bc.ft_lr,
                     warmup=10, log_every=0, model=model_cfg, lora=bc.lora, lemo=lemo_cfg,
                     data=DataConfig(seq_len=bc.ft_seq_len, passkey_mix=bc.passkey_mix))
    model = build_finetune_model(tc, device)
    if lemo_cfg.enabled:
        install_probe(model, lemo_cfg, dc.probe, bc.seed)
    keys = {s: make_passkey_batch(bc.passkey_trials, s, np.random.default_rng(bc.seed + 7 + s))
            for s in dc.lens}
    curve_keys = make_passkey_batch(dc.curve_examples, bc.ft_seq_len,
                                    np.random.default_rng(bc.seed + 99))
    curve = []

    def point(step: int) -> None:
        row = {"step": step, "answer_nll_dense": answer_nll(model, curve_keys, device)}
        if lemo_cfg.enabled:
            configure_lemo(model, dataclasses.replace(lemo_cfg, eliminate_in_eval=True))
            install_probe(model, lemo_cfg, dc.probe, bc.seed)
            row["answer_nll_sparse"] = answer_nll(model, curve_keys, device)
            configure_lemo(model, lemo_cfg)
            install_probe(model, lemo_cfg, dc.probe, bc.seed)
        curve.append(row)
        log.info("curve %s", {k: round(v, 4) for k, v in row.items()})

    # the code this run imported (lemo/ is edited by others while diagnostics run)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    result = {"command": " ".join(sys.argv), "config": to_dict(dc), "git_head": head.strip()}
    if tc.steps:
        every = dc.curve_every
        if every:
            point(0)
        st = finetune(model, train, tc, device, desc=dc.arm,
                      on_step=(lambda s: point(s["step"]) if every and s["step"] % every == 0
                               else None))
        result["losses"] = st["losses"]
        result["passkey_window"] = passkey_windows(train, tc)
        result["curve"] = curve
        result["ft_final_loss"] = float(np.mean(st["losses"][-10:]))
    rows = {"dense": evaluate(model, dc, val, keys, device)}
    log.info("dense: %s", rows["dense"])
    base = dataclasses.replace(bc.lemo, enabled=True, mlp_prune_ratio=0.0, eliminate_in_eval=True,
                               segment_size=2048)
    for rule in dc.eval_rules:
        probe = dc.probe if rule == "topk" else ProbeConfig(oracle=rule == "oracle")
        for r in dc.eval_keeps:
            cfg = dataclasses.replace(base, keep_ratio=r)
            configure_lemo(model, cfg)  # dense arms' LeMo layers were built disabled
            install_probe(model, cfg, probe, bc.seed)
            row = evaluate(model, dc, val, keys, device)
            if rule != "oracle":
                row["selection"] = {s: passkey_selection(model, k[:bc.selection_examples],
                                                         device, oracle_flags)
                                    for s, k in keys.items()}
            name = f"eliminate_keep{r:g}" + ("" if rule == "topk" else f"_{rule}")
            rows[name] = row
            log.info("%s: %s", name, row)
    result["eval"] = rows
    result["seconds"] = time.perf_counter() - t0
    atomic_write_json(run_dir / "diag.json", result)
    log.info("wrote %s (%.0f s)", run_dir / "diag.json", result["seconds"])
    return 0


if __name__ == "__main__":
    run(main)
