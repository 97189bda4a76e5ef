"""edgeoar: online action recognition on edge devices with early exits (EdgeOAR, arXiv
2412.01267).

Recognise an action from the first frames of a stream: every stream goes through a real
H.264 codec (PyAV), whose decoder hands over RGB frames, motion vectors (the motion modality)
and the block partition (guidance for spatial enhancement). Modules, one per paper concept:

* `codec` - H.264 encode, decode with motion-vector export, block partition, frame difference;
* `tfem` - TFEM: the temporal layering shift (causal shift buffers) and the partition-guided
  spatial enhancement;
* `models` - per-modality per-frame CNNs, running aggregation, per-step classifiers, gate;
* `exits` - IIE fusion, modality consistency and the exit policies (fixed-N, max-softmax,
  entropy, gate, random, IIE + MC, full clip);
* `data` - human-motion streams (`shared.motion`) through the codec, cached; UCF-101 loader;
* `online` - `stream(video_path, model)`, frame by frame; `train`, `eval`, `bench` - recipes.

Example (tiny inputs, a second): a texture drifting 2 px right per frame, through H.264 and
back; the decoder's motion vectors say so; a small model and the IIE fusion on top.

>>> import numpy as np, torch
>>> from edgeoar import ModelConfig, build_model, decode, encode_h264, iie_fuse
>>> tex = np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)
>>> tex = np.repeat(np.repeat(tex, 2, 0), 2, 1)          # 64 x 128, 2x2 texels
>>> frames = np.stack([tex[16:48, 40 - 2 * t:72 - 2 * t] for t in range(6)])
>>> d = decode(encode_h264(frames, fps=15, crf=10))
>>> d["rgb"].shape, d["mv"].shape                          # (T, H, W, 3), (T, 2, H/4, W/4)
((6, 32, 32, 3), (6, 2, 8, 8))
>>> float(np.median(d["mv"][3, 0]))                        # x motion of frame 3, px/frame
2.0
>>> model = build_model(ModelConfig(width=8, feat_dim=16), classes=3, steps=6,
...                     image_size=32, cell=4).eval()
>>> out = model(torch.from_numpy(d["rgb"])[None], torch.from_numpy(d["mv"])[None],
...             torch.from_numpy(d["part"])[None])
>>> tuple(out["rgb"].shape), tuple(out["gate"].shape)     # per-step logits, exit logits
((1, 6, 3), (1, 6))
>>> p, w = iie_fuse([np.array([0.5, 0.5]), np.array([0.9, 0.1])])
>>> w.round(2)                                             # the confident modality weighs more
array([0.32, 0.68])
"""

from edgeoar.codec import decode, encode_h264, frame_difference, iter_decoded
from edgeoar.config import BenchConfig, ExitConfig, ModelConfig, StreamConfig, TrainConfig
from edgeoar.data import load_split, load_video, ucf101_split
from edgeoar.exits import ExitRule, apply_policy, iie_fuse, modality_consistency, step_scores
from edgeoar.models import OnlineRecognizer, build_model, count_macs, load_model, save_model
from edgeoar.online import stream
from edgeoar.tfem import PartitionSpatialEnhancement, TemporalLayeringShift

__all__ = ["TrainConfig", "StreamConfig", "ModelConfig", "ExitConfig", "BenchConfig",
           "encode_h264", "decode", "iter_decoded", "frame_difference",
           "TemporalLayeringShift", "PartitionSpatialEnhancement", "OnlineRecognizer",
           "build_model", "save_model", "load_model", "count_macs", "iie_fuse",
           "modality_consistency", "step_scores", "apply_policy", "ExitRule", "stream",
           "load_split", "load_video", "ucf101_split"]
