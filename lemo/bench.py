"""`python -m lemo.bench`: LeMo vs LoRA, LoRA + segment loss, LoRA + gradient checkpointing and
LongLoRA S2-Attn, in one process on the same model, data and seeds.

Memory/time part (one LoRA model, arms switched in place with `configure_lemo`): exact
saved-for-backward bytes of one training step (`shared.memory.SavedTensorMeter`, parameters
excluded) at each of `mem_seq_lens`, and the median step time (forward + backward) at
`time_seq_len`. Accuracy part: from the embedded pretrained LM, the LoRA, LeMo (exact scores)
and LeMo (predictor) arms fine-tune for the same steps on the same batches at `ft_seq_len`
(extending the pretrained context), then held-out perplexity (evaluated dense) and passkey
accuracy are measured. Predictors: recall of the kept blocks vs exact selection, share of step
time and memory.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from lemo.config import (
    DataConfig,
    LemoConfig,
    LoraConfig,
    ModelConfig,
    PredictorConfig,
    TrainConfig,
)
from lemo.data import load_text, make_passkey_batch, passkey_accuracy
from lemo.finetune import build_finetune_model, finetune, predictor_batches
from lemo.loss import causal_lm_loss
from lemo.models import set_checkpointing
from lemo.patch import configure_lemo, lemo_layers
from lemo.predictor import capture_scores, fit_predictors, predictor_recall
from lemo.scoring import key_block_scores
from shared.bench import BenchReport, measure
from shared.cli import build_parser, parse_args, run
from shared.config import to_dict
from shared.io import make_run_dir
from shared.log import get_logger
from shared.memory import SavedTensorMeter
from shared.runtime import pick_device, set_seed
from shared.text import evaluate_perplexity

log = get_logger("lemo.bench")

DESCRIPTION = """Benchmark LeMo against LoRA, LoRA + segment loss, LoRA + gradient checkpointing
and LongLoRA S2-Attn: saved activation bytes per arm at several sequence lengths, step time,
and (after the same fine-tuning) held-out perplexity and passkey accuracy; plus predictor recall.
Writes bench.json (rows, checks, headline), bench.md and bench.png to --out (or runs/lemo/)."""


@dataclass
class BenchConfig:
    """What `lemo.bench` runs (defaults: the full setting; --quick shrinks it)."""

    seed: int = 0
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    # keep ratio, block, layer and selection policy: the paper's AE setting (causal column sum,
    # keep 0.4), whose claims this bench measures on the byte LM; the lemo_full arms add
    # `mlp_prune_ratio`. The library's default (`LemoConfig()`) is benched with
    # --set lemo.keep_ratio=0.6 --set lemo.score_reduce=mean --set lemo.sink_blocks=1
    # --set lemo.local_blocks=1 --set mlp_prune_ratio=0.5
    lemo: LemoConfig = field(default_factory=lambda: LemoConfig.paper(mlp_prune_ratio=0.0))
    mlp_prune_ratio: float = 0.8  # lemo_full arms: MLP channels not saved (AE default 0.8)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    mem_seq_lens: list[int] = field(default_factory=lambda: [2048, 4096, 8192])
    target_seq_len: int = 4096  # where the memory target is checked and time is measured
    time_repeats: int = 2
    ft_seq_len: int = 2048  # fine-tuning / evaluation length (pretrained at model.pretrain_seq_len)
    ft_steps: int = 300  # fewer left dense LoRA under 80% passkey (passkey_sweep, README)
    ft_lr: float = 3e-3
    passkey_mix: float = 0.9  # share of fine-tuning windows that are passkey examples
    ppl_windows: int = 8
    passkey_trials: int = 100  # per length; the same examples for every arm
    passkey_extra_lens: list[int] = field(default_factory=list)  # also evaluated (e.g. 4096)
    passkey_batch: int = 4
    # an extra dense LoRA arm fine-tuned with this RoPE scaling factor (1 = none; 0: no arm)
    compare_rope_scaling: float = 0.0
    selection_examples: int = 20  # passkey examples for the needle/question-block diagnostic
    sparse_eval_diagnostic: bool = True  # LeMo arms: also evaluate with elimination on
    recall_windows: int = 4
    accuracy: bool = True  # run the fine-tuning + accuracy part


# --quick: the memory, step-time and predictor arms only (fine-tuning three LMs for the accuracy
# arms takes ~10 minutes on 2 cores; `--quick --set accuracy=true` brings them back, small)
QUICK = {"accuracy": False, "mem_seq_lens": [4096],
         "ft_seq_len": 1024, "ft_steps": 60, "ppl_windows": 4, "passkey_trials": 20,
         "selection_examples": 10,
         "predictor.steps": 100, "predictor.windows": 4, "predictor.prune_every": 25,
         "predictor.prune_until": 75, "recall_windows": 2, "time_repeats": 1}


def label(s: int) -> str:
    return f"{s // 1024}K" if s % 1024 == 0 else str(s)


def arms(base: LemoConfig, mlp_prune_ratio: float) -> dict[str, tuple[LemoConfig, bool]]:
    """arm name -> (LemoConfig, gradient checkpointing)."""
    r = dataclasses.replace
    dense = r(base, enabled=False, segment_size=0, mlp_prune_ratio=0.0)
    return {
        "lora": (dense, False),
        "lora+segloss": (r(dense, segment_size=2048), False),
        "lora+gc": (dense, True),
        "longlora_s2": (r(dense, enabled=True, attention="s2"), False),
        "lemo_attn": (r(base, segment_size=2048, mlp_prune_ratio=0.0, scorer="exact"), False),
        "lemo_full": (r(base, segment_size=2048, scorer="exact",
                        mlp_prune_ratio=mlp_prune_ratio), False),
        "lemo_full_pred": (r(base, segment_size=2048, scorer="predictor",
                             mlp_prune_ratio=mlp_prune_ratio), False),
    }


def step_fn(model, x, cfg: LemoConfig):
    def step():
        model.zero_grad(set_to_none=True)
        loss = causal_lm_loss(model, x, segment=cfg.segment_size)
        loss.backward()
        return loss.item()
    return step


def memory_part(rep: BenchReport, model, bc: BenchConfig, device: str) -> None:
    g = torch.Generator().manual_seed(bc.seed)
    params = list(model.parameters())
    model.train()  # evaluation left it in eval mode, where LeMo runs dense
    for s in bc.mem_seq_lens:
        x = torch.randint(0, 256, (1, s), generator=g).to(device)
        for name, (cfg, gc) in arms(bc.lemo, bc.mlp_prune_ratio).items():
            configure_lemo(model, cfg)
            set_checkpointing(model, gc)
            with SavedTensorMeter(exclude=params) as meter:
                loss = causal_lm_loss(model, x, segment=cfg.segment_size)
            loss.backward()
            model.zero_grad(set_to_none=True)
            row = {"saved_MB": meter.bytes / 2**20}
            if s == bc.target_seq_len:
                # the metered step above warmed up; CPU steps at 4K+ take many seconds each
                sync = torch.cuda.synchronize if device.startswith("cuda") else None
                t = measure(step_fn(model, x, cfg), warmup=0, repeats=bc.time_repeats, sync=sync)
                row["step_s"] = t["median_s"]
            rep.add(name, setting=label(s), **row)
            log.info("%s @%d: %s", name, s, {k: round(v, 3) for k, v in row.items()})
    set_checkpointing(model, False)


def predictor_share(rep: BenchReport, model, bc: BenchConfig, device: str) -> dict:
    """Predictors' forward time at target_seq_len vs the lemo_full_pred step time; their
    parameter bytes vs that arm's saved bytes."""
    s = bc.target_seq_len
    x = torch.randint(0, 256, (1, s), generator=torch.Generator().manual_seed(bc.seed)).to(device)
    configure_lemo(model, arms(bc.lemo, bc.mlp_prune_ratio)["lemo_full"][0])
    data = capture_scores(model, [x])
    layers = [m for m in lemo_layers(model) if m.predictor is not None]

    def run_predictors():
        with torch.no_grad():
            for m in layers:
                m.predictor.key_scores(data[m.layer_idx][0][0].to(device), m.cfg.score_reduce,
                                       m.cfg.causal_scores)

    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    t_pred = measure(run_predictors, warmup=1, repeats=3, sync=sync)["median_s"]
    # how positional is the exact selection? share of kept blocks inside the first-k prefix
    prefix = []
    for m in layers:
        tiles = data[m.layer_idx][0][1]
        scores = key_block_scores(tiles, m.cfg.score_reduce, m.cfg.causal_scores)
        kept = m.eliminator.select_blocks(scores)
        prefix.append(float((kept < kept.shape[1]).float().mean()))
    step = rep.value("lemo_full_pred", "step_s", label(s))
    saved = rep.value("lemo_full_pred", "saved_MB", label(s))
    p_bytes = sum(p.numel() * p.element_size() for m in layers for p in m.predictor.parameters())
    return {"predictor_time_share": t_pred / step if step else float("nan"),
            "predictor_mem_share_of_saved": p_bytes / 2**20 / saved if saved else float("nan"),
            "predictor_params": sum(m.predictor.n_params() for m in layers),
            "exact_selection_prefix_share": sum(prefix) / max(1, len(prefix))}


def mlp_pruning_fidelity(model, bc: BenchConfig, device: str, tokens: np.ndarray) -> dict:
    """Effect of MLP saved-channel pruning on one step of held-out text: loss (equal: the
    forward is exact) and cosine similarity of the LoRA gradients with vs without pruning."""
    x = torch.from_numpy(tokens[: bc.ft_seq_len].astype(np.int64))[None].to(device)
    model.train()
    a = arms(bc.lemo, bc.mlp_prune_ratio)
    grads, losses = [], []
    for name in ("lemo_attn", "lemo_full"):
        configure_lemo(model, a[name][0])
        model.zero_grad(set_to_none=True)
        loss = causal_lm_loss(model, x, segment=a[name][0].segment_size)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                if p.grad is not None]))
    model.zero_grad(set_to_none=True)
    cos = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0).item()
    return {"loss_no_prune": losses[0], "loss_prune": losses[1], "lora_grad_cosine": cos}


def accuracy_arms(bc: BenchConfig) -> dict[str, tuple[LemoConfig, ModelConfig, bool]]:
    """Accuracy arm -> (LemoConfig, ModelConfig, fine-tuned?). `lora_rope<f>` is dense LoRA with
    linear RoPE scaling (position interpolation) by `compare_rope_scaling` = f instead of
    model.rope_scaling_factor (0: no such arm)."""
    a = arms(bc.lemo, bc.mlp_prune_ratio)
    out = {"base": (a["lora"][0], bc.model, False), "lora": (a["lora"][0], bc.model, True)}
    f = bc.compare_rope_scaling
    if f and f != bc.model.rope_scaling_factor:
        out[f"lora_rope{f:g}"] = (a["lora"][0],
                                  dataclasses.replace(bc.model, rope_scaling_factor=f), True)
    out["lemo_full"] = (a["lemo_full"][0], bc.model, True)
    out["lemo_full_pred"] = (a["lemo_full_pred"][0], bc.model, True)
    return out


def passkey_sets(bc: BenchConfig) -> dict[int, np.ndarray]:
    """Seeded passkey examples per evaluated length (the same for every arm)."""
    lens = [bc.ft_seq_len] + [s for s in bc.passkey_extra_lens if s != bc.ft_seq_len]
    return {s: make_passkey_batch(bc.passkey_trials, s, np.random.default_rng(bc.seed + 7 + s))
            for s in lens}


def accuracy_arm(name: str, bc: BenchConfig, device: str, train_tokens: np.ndarray,
                 val_tokens: np.ndarray, passkeys: dict[int, np.ndarray],
                 hook: Callable[[torch.nn.Module, LemoConfig], None] | None = None
                 ) -> tuple[dict, object]:
    """Fine-tune one accuracy arm from the embedded LM (same steps, batches, seed as every
    other arm), then held-out perplexity (dense) and passkey accuracy per length.
    `hook(model, lemo_cfg)` runs after every (re)configuration of LeMo layers (experiments
    install their probes there). Returns (row, model)."""
    hook = hook or (lambda model, cfg: None)
    lemo_cfg, model_cfg, tuned = accuracy_arms(bc)[name]
    tc = TrainConfig(seed=bc.seed, device=device, steps=bc.ft_steps, lr=bc.ft_lr, warmup=10,
                     log_every=0, model=model_cfg, lora=bc.lora, lemo=lemo_cfg,
                     data=DataConfig(seq_len=bc.ft_seq_len, passkey_mix=bc.passkey_mix),
                     predictor=bc.predictor)
    model = build_finetune_model(tc, device)
    if lemo_cfg.enabled:
        hook(model, lemo_cfg)
    row, info = {}, None
    if lemo_cfg.enabled and lemo_cfg.scorer == "predictor":
        info = fit_predictors(model, predictor_batches(train_tokens, tc, bc.predictor.windows,
                                                       bc.seed + 1, device), bc.predictor)
        held_out = predictor_batches(train_tokens, tc, bc.recall_windows, bc.seed + 2, device)
        row["recall"] = predictor_recall(model, held_out)
        before = sum(v["params_before_elastic"] for v in info.values())
        row["predictor_size_kept"] = sum(v["params"] for v in info.values()) / before
    if tuned:
        t0 = time.perf_counter()
        st = finetune(model, train_tokens, tc, device, desc=name)
        row["ft_s"] = time.perf_counter() - t0
        row["ft_final_loss"] = float(np.mean(st["losses"][-10:]))
    row["ppl"] = evaluate_perplexity(model, val_tokens, bc.ft_seq_len, bc.ppl_windows, device)
    for s, keys in passkeys.items():
        metric = "passkey" if s == bc.ft_seq_len else f"passkey@{label(s)}"
        row[metric] = passkey_accuracy(model, keys, batch_size=bc.passkey_batch, device=device)
    if tuned and lemo_cfg.enabled and bc.sparse_eval_diagnostic:
        # diagnostic, not the target: evaluate with the same elimination as in training
        configure_lemo(model, dataclasses.replace(lemo_cfg, eliminate_in_eval=True))
        hook(model, lemo_cfg)
        row["ppl_sparse_eval"] = evaluate_perplexity(model, val_tokens, bc.ft_seq_len,
                                                     bc.ppl_windows, device)
        row["passkey_sparse_eval"] = passkey_accuracy(model, passkeys[bc.ft_seq_len],
                                                      batch_size=bc.passkey_batch, device=device)
        configure_lemo(model, lemo_cfg)
        hook(model, lemo_cfg)
    if info is not None:
        row["_predictor_info"] = info
    return row, model


def passkey_selection(model, keys: np.ndarray, device: str,
                      prepare: Callable[[torch.nn.Module, torch.Tensor], None] | None = None
                      ) -> dict:
    """Does token elimination keep what retrieval needs? Over passkey examples (n, s) and every
    eliminating layer (exact scores, as in training): the share of examples whose needle block
    (the block holding the key's first statement) and whose question block (the last one) are
    kept, and the share of kept blocks inside the first-k prefix (positional bias).
    `prepare(layer, x)` runs before a layer selects for example x (a probe's per-example state)."""
    needle = np.array([bytes(r.astype(np.uint8).tolist()).find(b"The pass key is")
                       for r in keys])  # diagnostic only: one search per example
    x = [torch.from_numpy(r[None]).to(device) for r in keys]
    data = capture_scores(model, x)
    out = {"needle_block_kept": [], "question_block_kept": [], "kept_prefix_share": []}
    for m in lemo_layers(model):
        if m.layer_idx not in data:
            continue
        nb = keys.shape[1] // m.cfg.block_size
        for (_, tiles), pos, xi in zip(data[m.layer_idx], needle, x):
            scores = key_block_scores(tiles, m.cfg.score_reduce, m.cfg.causal_scores)
            if prepare is not None:
                prepare(m, xi)
            kept = m.eliminator.select_blocks(scores)[0]
            out["needle_block_kept"].append(float((kept == pos // m.cfg.block_size).any()))
            out["question_block_kept"].append(float((kept == nb - 1).any()))
            out["kept_prefix_share"].append(float((kept < kept.numel()).float().mean()))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}


def accuracy_part(rep: BenchReport, bc: BenchConfig, device: str, train_tokens: np.ndarray,
                  val_tokens: np.ndarray) -> dict:
    out = {}
    passkeys = passkey_sets(bc)
    for name in accuracy_arms(bc):
        row, model = accuracy_arm(name, bc, device, train_tokens, val_tokens, passkeys)
        info = row.pop("_predictor_info", None)
        if info is not None:
            out["predictor_info"] = info
        rep.add(name, setting="ft" + label(bc.ft_seq_len), **row)
        log.info("%s: %s", name, {k: round(v, 4) for k, v in row.items()})
        if name == "lemo_full":
            out["passkey_selection"] = passkey_selection(
                model, passkeys[bc.ft_seq_len][: bc.selection_examples], device)
            log.info("passkey blocks under elimination: %s", out["passkey_selection"])
        if name == "lemo_full_pred":
            out["model"] = model
    return out


def arms_model(rep: BenchReport, bc: BenchConfig, device: str, train_tokens: np.ndarray,
               val_tokens: np.ndarray) -> torch.nn.Module:
    """The model the memory/time arms switch in place: with `bc.accuracy`, the fine-tuned LeMo
    (predictor) arm after the accuracy part has added its rows; otherwise a fresh LoRA model
    with fitted predictors."""
    if bc.accuracy:
        acc = accuracy_part(rep, bc, device, train_tokens, val_tokens)
        rep.extra["passkey_selection"] = acc.get("passkey_selection")
        return acc["model"]  # fine-tuned, with trained predictors
    tc = TrainConfig(seed=bc.seed, model=bc.model, lora=bc.lora, lemo=bc.lemo,
                     data=DataConfig(seq_len=bc.ft_seq_len), predictor=bc.predictor)
    model = build_finetune_model(tc, device)
    fit_predictors(model, predictor_batches(train_tokens, tc, bc.predictor.windows,
                                            bc.seed + 1, device), bc.predictor)
    return model


def checks(rep: BenchReport, bc: BenchConfig, shares: dict) -> None:
    """The package's targets, on the figures just measured (accuracy ones with `bc.accuracy`)."""
    tgt = label(bc.target_seq_len)
    mem_ratio = rep.value("lemo_full", "saved_MB", tgt) / rep.value("lora", "saved_MB", tgt)
    rep.check(f"LeMo saved bytes / LoRA @{tgt}", mem_ratio, "<=", 0.6)
    rep.check("predictor step-time share", shares["predictor_time_share"], "<=", 0.05)
    if not bc.accuracy:
        return
    ft = "ft" + label(bc.ft_seq_len)
    ppl_l, ppl_m = rep.value("lora", "ppl", ft), rep.value("lemo_full", "ppl", ft)
    pk_l, pk_m = rep.value("lora", "passkey", ft), rep.value("lemo_full", "passkey", ft)
    rep.check("LeMo ppl / LoRA ppl - 1", ppl_m / ppl_l - 1, "<=", 0.03)
    rep.check(f"LoRA passkey accuracy @{label(bc.ft_seq_len)} (precondition)", pk_l, ">=", 0.8)
    rep.check(f"LoRA passkey - LeMo passkey @{label(bc.ft_seq_len)} (points; vacuous unless "
              "LoRA >= 80%)", 100 * (pk_l - pk_m), "<=", 2)
    for s in bc.passkey_extra_lens:  # beyond the fine-tuning length
        m = f"passkey@{label(s)}"
        pk_l_s, pk_m_s = rep.value("lora", m, ft), rep.value("lemo_full", m, ft)
        rep.check(f"LoRA passkey accuracy @{label(s)} (precondition)", pk_l_s, ">=", 0.8)
        rep.check(f"LoRA passkey - LeMo passkey @{label(s)} (points; vacuous unless "
                  "LoRA >= 80%)", 100 * (pk_l_s - pk_m_s), "<=", 2)
    rep.check("predictor recall vs exact selection",
              rep.value("lemo_full_pred", "recall", ft), ">=", 0.9)


def headlines(rep: BenchReport, bc: BenchConfig) -> None:
    """The rows of results/SUMMARY.md: memory, step time and (with `bc.accuracy`) perplexity."""
    tgt = label(bc.target_seq_len)
    lora_b, full_b = rep.value("lora", "saved_MB", tgt), rep.value("lemo_full", "saved_MB", tgt)
    t_ratio = rep.value("lora", "step_s", tgt) / rep.value("lemo_full", "step_s", tgt)
    rep.headline("up to 1.93x less memory than LoRA (Llama2-7B, A800)",
                 f"{lora_b / full_b:.2f}x less saved activation memory", "LoRA",
                 lora_b / full_b, setting=f"{tgt} tokens, CPU saved-tensor bytes")
    rep.headline("up to 1.36x faster steps than LoRA", f"{t_ratio:.2f}x step time", "LoRA",
                 t_ratio, setting=f"{tgt} tokens, 2-core CPU, exact scorer")
    if bc.accuracy:
        ft = "ft" + label(bc.ft_seq_len)
        ppl_l, ppl_m = rep.value("lora", "ppl", ft), rep.value("lemo_full", "ppl", ft)
        rep.headline("perplexity within ~0.1-0.2 of LoRA (7B, PG19)",
                     f"ppl {ppl_m:.3f} vs {ppl_l:.3f}", "LoRA", ppl_l / ppl_m,
                     setting=f"tiny byte LM, {bc.ft_seq_len} tokens, dense eval")


def notes(rep: BenchReport, bc: BenchConfig, t_start: float) -> None:
    """What the columns measure, the LeMo settings and the bench's wall time."""
    rep.notes += [
        "saved_MB: exact bytes autograd saves for backward in one training step (parameters "
        "excluded), batch 1, float32.",
        "step_s: median forward+backward seconds on this machine (shared CPU: compare ratios).",
        f"lemo_* arms use keep ratio {bc.lemo.keep_ratio:.2f}, block {bc.lemo.block_size}, "
        f"layers kept dense: first {100 * bc.lemo.dense_first:.0f}% + last; lemo_full prunes "
        f"{100 * bc.mlp_prune_ratio:.0f}% of MLP channels from the saved activations "
        "(approximate input gradient).",
        f"total bench time {time.perf_counter() - t_start:.0f} s",
    ]


def plot_metrics(rep: BenchReport) -> list[str] | None:
    """The metrics bench.png shows; None (and a note) without matplotlib."""
    try:
        import matplotlib  # noqa: F401

        return ["saved_MB", "step_s"]
    except ImportError:
        rep.notes.append("matplotlib missing: no bench.png")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("lemo.bench", DESCRIPTION, default_config=None)
    parser.add_argument("--no-accuracy", action="store_true",
                        help="skip pretraining/fine-tuning (memory and time arms only)")
    args, bc = parse_args(argv, BenchConfig, prog="lemo.bench", description=DESCRIPTION,
                          parser=parser, quick=QUICK)
    if args.no_accuracy:
        bc.accuracy = False
    set_seed(bc.seed)
    device = pick_device(bc.device)
    run_dir = make_run_dir(args.out, "lemo", "bench")
    rep = BenchReport("lemo", baseline="lora", command=sys.argv)
    rep.extra["config"] = to_dict(bc)
    t_start = time.perf_counter()
    train_tokens = load_text(None, "train", "text", 4_000_000)
    val_tokens = load_text(None, "val", "text", 2_000_000)

    model = arms_model(rep, bc, device, train_tokens, val_tokens)
    memory_part(rep, model, bc, device)
    shares = predictor_share(rep, model, bc, device)
    rep.extra["predictor"] = shares
    rep.extra["mlp_pruning"] = mlp_pruning_fidelity(model, bc, device, val_tokens)
    log.info("predictor: %s; MLP pruning: %s", shares, rep.extra["mlp_pruning"])

    checks(rep, bc, shares)
    headlines(rep, bc)
    notes(rep, bc, t_start)
    rep.write(run_dir, plot_metrics=plot_metrics(rep))
    return 0


if __name__ == "__main__":
    run(main)
