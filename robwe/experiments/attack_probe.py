"""Probe: train one RobWE federation (cached under /tmp) and run the attack suite on it.

    python -m robwe.experiments.attack_probe --set fl.rounds=12 --set watermark.layout=strided

Prints the robustness curves and the removal verdicts at each attacker data share.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from robwe.config import AttackConfig, RobWEConfig
from robwe.federation import build_federation
from robwe.robustness import attack_curves, removal_verdicts, victims
from shared.config import load_config, to_dict
from shared.fl import run_rounds


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    sets = [a for a in argv if "=" in a]
    cfg = load_config(Path("configs/robwe/mnist5k.yaml"), RobWEConfig,
                      overrides=[s for s in sets if not s.startswith("attack.")])
    ac = AttackConfig()
    for s in sets:
        if s.startswith("attack."):
            k, v = s[len("attack."):].split("=")
            setattr(ac, k, json.loads(v))
    fed = build_federation(cfg)
    tag = hashlib.sha1(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    cache = Path(f"/tmp/robwe_probe_{tag}.pt")
    if cache.exists():
        state = torch.load(cache, weights_only=True)
        fed.strategy.global_state, private = state["global"], state["private"]
    else:
        private: dict = {}
        run_rounds(fed.strategy, fed.client, fed.client_ids, cfg.fl.rounds, private=private)
        torch.save({"global": fed.strategy.global_state, "private": private}, cache)
    vic = victims(fed, 3)
    for frac, lr in [(f, lr) for f in ac.data_fracs for lr in ac.lr_mults]:
        curves = attack_curves(fed, private, vic, ac, frac, lr)
        print(f"== data share {frac}, lr x{lr}")
        for name, pts in curves.items():
            for p in pts:
                print(f"{name:15s} {p['strength']:7g} acc {p['acc']:.3f} drop {p['acc_drop']:+5.1f}"
                      f" head {p.get('head_bits', float('nan')):.3f}"
                      f" slice {p.get('slice_bits', float('nan')):.3f}")
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "worst"}
                          for k, v in removal_verdicts(curves).items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
