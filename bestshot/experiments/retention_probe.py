"""`python -m bestshot.experiments.retention_probe [--quick]`: where ShotVL's visual-content
retrieval is lost out of distribution. Loads the bench's cached base and ShotVL models (run the
bench first) and prints visual-text -> frame R@1 (the bench's retention clips and galleries)
on the validation, test and ood splits, and on
two splits that shift one factor of ood each (camera only, body only), for:
base; ShotVL; ShotVL's vision tower with base's text head; base's vision tower with ShotVL's
text head; and the WiSE-FT averages over the bench's alpha grid. Writes retention_probe.json
under --out."""

from __future__ import annotations

import copy
from dataclasses import replace

from bestshot.bench import QUICK, arm_configs, retention, retention_split
from bestshot.config import BenchConfig
from bestshot.models import load_model
from bestshot.train import model_file
from bestshot.wiseft import weight_average
from shared.cli import parse_args, run
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("bestshot.experiments.retention_probe")


def swap(vision_from, text_from):
    """A ShotVL with the vision tower + image projection of one model, text head of another."""
    m = copy.deepcopy(text_from)
    m.vision.load_state_dict(vision_from.vision.state_dict())
    m.img_proj.load_state_dict(vision_from.img_proj.state_dict())
    return m.eval()


def main(argv: list[str] | None = None) -> int:
    args, bc = parse_args(argv, BenchConfig, prog="bestshot.experiments.retention_probe",
                          description=__doc__ or "", quick=QUICK,
                          default_config="configs/bestshot/bench.yaml")
    base_path = model_file(arm_configs(bc)["base"])
    base = load_model(base_path)[0]
    ft = load_model(model_file(arm_configs(bc, str(base_path))["shotvl"]))[0]
    o = bc.ood
    splits = {"val": bc.val, "test": bc.test, "ood": o,
              "ood_camera_only": replace(bc.test, seed=40_000, camera_yaw_range=o.camera_yaw_range,
                                         camera_pitch_range=o.camera_pitch_range),
              "ood_body_only": replace(bc.test, seed=50_000, height_range=o.height_range,
                                       proportion_range=o.proportion_range)}
    models = {"base": base, "shotvl": ft, "shotvl_vision+base_text": swap(ft, base),
              "base_vision+shotvl_text": swap(base, ft)}
    models.update({f"wise_{a:g}": weight_average(base, ft, a) for a in bc.wise_alphas})
    out = {}
    for s, vc in splits.items():
        rs = retention_split(vc, bc)
        out[s] = {n: retention(m, rs, bc) for n, m in models.items()}
        log.info("%s: %s", s, ", ".join(f"{n} {r:.3f}" for n, r in out[s].items()))
    run_dir = make_run_dir(args.out, "bestshot", "retention_probe")
    atomic_write_json(run_dir / "retention_probe.json", out)
    log.info("wrote %s", run_dir)
    return 0


if __name__ == "__main__":
    run(main)
