"""`python -m crosslm.eval --run DIR`: the LLM side of a trained CrossLM run, re-measured.

Loads DIR/config.yaml and DIR/adapter.safetensors (written by `crosslm.train`; weights only,
checked against the rebuilt model), rebuilds the setup from the config and writes
DIR/eval.json: the base LLM's and the adapted LLM's oracle-judged label fidelity,
generative-classifier accuracy on the test set and on the out-of-family text, and held-out
perplexity, plus a few generations per label.
"""

from __future__ import annotations

from pathlib import Path

import torch

from crosslm.config import CrossLMConfig
from crosslm.evaluation import generative_accuracy
from crosslm.pipeline import Setup, build_setup, llm_metrics, make_arm
from shared.cli import build_parser, parse_args, run
from shared.config import load_config
from shared.io import atomic_write_json, load_weights
from shared.log import get_logger
from shared.validate import check_state_dict

log = get_logger("crosslm.eval")


def evaluate_run(run_dir: Path, per_label: int = 16, setup: Setup | None = None) -> dict:
    """Write and return DIR/eval.json. `setup`: one already built from the run's config."""
    cfg = load_config(run_dir / "config.yaml", CrossLMConfig)
    tensors, _ = load_weights(run_dir / "adapter.safetensors", "crosslm-lora")
    torch.set_num_threads(cfg.threads)
    setup = setup if setup is not None else build_setup(cfg)
    strategy, _ = make_arm(setup, "kd", cfg)
    llm = strategy.llm
    trainable = {k: v for k, v in llm.named_parameters() if v.requires_grad}
    check_state_dict(tensors, {k: tuple(v.shape) for k, v in trainable.items()},
                     str(run_dir / "adapter.safetensors"))
    out = {"base": llm_metrics(setup, llm, strategy.prompts, 0, per_label)}
    with torch.no_grad():
        for k, v in trainable.items():
            v.copy_(tensors[k])
    out["adapted"] = llm_metrics(setup, llm, strategy.prompts, 0, per_label)
    ood = setup.fed.ood
    if ood is not None:
        out["adapted"]["gen_acc_ood"] = generative_accuracy(llm, setup.codec, strategy.prompts,
                                                            ood.texts, ood.labels)
    texts, labels = strategy.generate(10_000, per_label=3, purpose=9)
    out["samples"] = [{"label": setup.fed.task.label_names[int(y)], "text": t}
                      for t, y in zip(texts, labels)]
    atomic_write_json(run_dir / "eval.json", out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("crosslm.eval", __doc__, run="run dir written by crosslm.train")
    args, _ = parse_args(argv, CrossLMConfig, prog="crosslm.eval", description=__doc__,
                         parser=parser)
    if args.run is None:
        from shared.errors import UserError

        raise UserError("--run DIR is required (a crosslm.train run dir)")
    out = evaluate_run(Path(args.run))
    log.info("fidelity %.3f -> %.3f, generative accuracy %.3f -> %.3f", out["base"]["fidelity"],
             out["adapted"]["fidelity"], out["base"]["gen_acc"], out["adapted"]["gen_acc"])
    return 0


if __name__ == "__main__":
    run(main)
