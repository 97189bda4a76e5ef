"""What the probes here share: the bench config with the cross-rig net these measurements read
(C1, the low-frequency term against the truth at weight 1; bench.yaml holds C3 since), and that
net's outputs after the bench's refinement."""
import torch

from mobifuse.bench import QUICK, frame_shift, refined
from mobifuse.config import BenchConfig
from mobifuse.train import predict_frames
from shared.cli import parse_args

C1_SETS = ["--set", "rig_lf_weight=1.0", "--set", "train.lf_target=gt",
           # options added to bench.yaml after these probes ran, off as they were then
           "--set", "rig_camera_maps=false", "--set", "rig_mpi_gain=0", "--set",
           "rig_surface_tol=0"]


def c1_config(argv=()) -> BenchConfig:
    """bench.yaml with C1's term; `argv` adds further `--set`s."""
    _, cfg = parse_args([*C1_SETS, *argv], BenchConfig, prog="fresh_unseen probe",
                        description=__doc__, default_config="configs/mobifuse/bench.yaml",
                        quick=QUICK)
    torch.set_num_threads(1)
    return cfg


def finals(net, frames, cfg):
    """[(raw net depth, depth after the bench's refinement)] per frame."""
    return [(p, refined(p, f, cfg.agree_k, shift=frame_shift(cfg.train.sim, f["rig"][1])))
            for p, f in zip(predict_frames(net, frames), frames)]
