"""`python -m lemo.eval`: held-out perplexity and passkey-retrieval accuracy.

Loads a `lemo.train` run dir (its config.yaml, LoRA adapter and predictors) or, without
`run_dir`, the base model; evaluates dense unless `eliminate=true` (the paper evaluates dense).
Writes eval.json into --out (default: the run dir).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from lemo.config import EvalConfig, TrainConfig
from lemo.data import load_text, make_passkey_batch, passkey_accuracy
from lemo.models import load_model
from lemo.patch import apply_lemo, lemo_layers
from lemo.predictor import PREDICTORS_FILE, load_predictors
from shared.cli import build_parser, parse_args, run
from shared.config import load_config, to_dict
from shared.errors import ConfigError, DataError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger
from shared.runtime import pick_device, set_seed
from shared.text import evaluate_perplexity
from shared.validate import safetensors_shapes

log = get_logger("lemo.eval")

DESCRIPTION = """Evaluate a LeMo / LoRA fine-tuning run: held-out perplexity (byte-level, dense
unless eliminate=true) and passkey-retrieval accuracy at seq_len.

examples:
  python -m lemo.eval --run runs/lemo/tiny --set seq_len=512
  python -m lemo.eval --config configs/lemo/eval_2k.yaml --run runs/lemo/lemo_2k
"""


def check_adapter(model, adapter: Path, allow_missing: bool = False) -> None:
    """The adapter file must hold every LoRA tensor of the model (peft only warns and keeps the
    random init) unless `allow_missing`, and every trainable tensor must be finite."""
    stored = set(safetensors_shapes(adapter / "adapter_model.safetensors")) \
        if (adapter / "adapter_model.safetensors").is_file() else set()
    names = [n for n, _ in model.named_parameters() if ".lora_" in n]
    missing = [n for n in names if n.replace(".default", "") not in stored]
    if missing and not allow_missing:
        raise DataError(f"{adapter}: adapter lacks {len(missing)} LoRA tensor(s), e.g. "
                        f"'{missing[0]}' (set allow_missing_adapter=true to keep them at init)")
    for n, p in model.named_parameters():
        if p.requires_grad or ".lora_" in n:
            if not bool(torch.isfinite(p).all()):
                raise DataError(f"{adapter}: tensor '{n}' has NaN or inf values")


def load_run(ec: EvalConfig, device: str):
    """(model, TrainConfig | None) for `ec.run_dir` or the base model."""
    if ec.run_dir is None:
        model = load_model(ec.model)
        return model.to(device).eval(), None
    run_dir = Path(ec.run_dir)
    tc = load_config(run_dir / "config.yaml", TrainConfig)
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise DataError(f"{adapter}: no LoRA adapter (has the training run finished?)")
    from peft import PeftModel

    model = load_model(tc.model)
    apply_lemo(model, dataclasses.replace(tc.lemo, eliminate_in_eval=ec.eliminate))
    model = PeftModel.from_pretrained(model, str(adapter))
    check_adapter(model, adapter, allow_missing=ec.allow_missing_adapter)
    preds = run_dir / PREDICTORS_FILE
    if preds.is_file():
        table = {i: p.to(device) for i, p in load_predictors(preds).items()}
        for m in lemo_layers(model):
            m.set_predictor(table.get(m.layer_idx))
    return model.to(device).eval(), tc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("lemo.eval", DESCRIPTION,
                          run="a lemo.train run dir (default: the base model, no adapter)")
    args, ec = parse_args(argv, EvalConfig, prog="lemo.eval", description=DESCRIPTION,
                          parser=parser, quick={"ppl_windows": 2, "passkey_trials": 4})
    if args.run is not None:
        ec.run_dir = args.run
    set_seed(ec.seed)
    device = pick_device(ec.device)
    model, tc = load_run(ec, device)
    if ec.eliminate and tc is not None and ec.seq_len % tc.lemo.block_size:
        raise ConfigError(f"seq_len {ec.seq_len} is not a multiple of the run's lemo.block_size "
                          f"{tc.lemo.block_size} (needed with eliminate=true)")
    val = load_text(ec.data.val_path, "val", ec.data.text_key, ec.data.max_corpus_bytes)
    ppl = evaluate_perplexity(model, val, ec.seq_len, ec.ppl_windows, device)
    keys = make_passkey_batch(ec.passkey_trials, ec.seq_len, np.random.default_rng(ec.seed + 7))
    acc = passkey_accuracy(model, keys, device=device)
    out_dir = Path(args.out) if args.out else (Path(ec.run_dir) if ec.run_dir else
                                               make_run_dir(None, "lemo", "eval"))
    result = {"perplexity": ppl, "passkey_accuracy": acc, "seq_len": ec.seq_len,
              "eliminate": ec.eliminate, "config": to_dict(ec), "command": " ".join(sys.argv)}
    atomic_write_json(out_dir / "eval.json", result)
    log.info("perplexity %.4f, passkey accuracy %.3f (%d trials) -> %s", ppl, acc,
             ec.passkey_trials, out_dir / "eval.json")
    return 0


if __name__ == "__main__":
    run(main)
