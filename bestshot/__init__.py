"""bestshot: language-queried highlight frames in human-centric video (BestShot / ShotVL, Xue et
al., arXiv 2412.12675, AAAI 2025), reimplemented small: a dual encoder that scores every frame
of a video against a query naming visual content, action stage and pose, trained on generated
human-motion video with exact ground truth.

Modules (paper concept -> module):
- pose captions from 3D joints (PoseScript-style posecodes: extraction, randomised binning,
  selection, aggregation, templates): `bestshot.posecodes`;
- action-stage and visual-content text, paraphrase corpus, held-out query templates,
  furthest-point sampling: `bestshot.captions`;
- ShotVL-lite dual encoder (pretrained MiniLM text tower, small vision tower from transformers
  classes, CLIP-style `from_pretrained`, LoRA option): `bestshot.models`;
- contrastive training with intra-video hard negatives: `bestshot.contrastive`;
- `query(video, text)`, temporal smoothing, retention R@1: `bestshot.retrieval`;
- WiSE-FT weight averaging of base and fine-tuned model, alpha chosen on validation:
  `bestshot.wiseft`;
- BestShot metrics, THUMOS14 mAP and loaders, QVHighlights jsonl: `bestshot.metrics`;
- generated splits (`shared.motion`), frame captions, queries: `bestshot.data`;
- heuristic and oracle arms: `bestshot.baselines`;
- recipes: `python -m bestshot.train | bestshot.eval | bestshot.bench`.

Example (what a notebook user types; a few seconds): a generated squat, its pose text at the
apex, and the oracle arm -- the true skeleton's posecodes matched against the apex's -- finds
the highlight frame. `query` runs any dual encoder on frames or a video file.

>>> from shared.motion import JOINTS, MotionConfig, generate_clip
>>> from bestshot import ModelConfig, ShotVL, describe, extract_posecodes, posecode_match, query
>>> clip = generate_clip(MotionConfig(image_size=32, fps=8, clip_seconds=3.0), 0, ["squat"])
>>> codes = extract_posecodes(clip.joints3d, JOINTS)          # (T, K) categorical posecodes
>>> apex = clip.segments[0]["apex_frame"]
>>> describe(codes[apex])[:62]
'Both knees are almost completely bent, both hips are almost co'
>>> scores = posecode_match(codes[apex], codes[apex] >= 0, codes)
>>> int(scores.argmax()) == apex
True
>>> model = ShotVL(ModelConfig(image_size=32, hidden=32, embed_dim=16))   # untrained here
>>> frame, scores = query(clip.frames, "the lowest point of the squat", model=model)
>>> scores.shape
(24,)

A trained model: `python -m bestshot.train --quick`, then `bestshot.from_pretrained(run_dir)`.
"""

from bestshot.captions import compose, furthest_point_sampling, paraphrase, stage_phrase
from bestshot.config import BenchConfig, CaptionConfig, ModelConfig, TrainConfig, VideoConfig
from bestshot.contrastive import contrastive_loss
from bestshot.data import VideoSet, caption_frames, generate_split, make_queries
from bestshot.metrics import (
    frame_ap,
    highlight_metrics,
    load_actionformer_json,
    load_thumos_annotations,
    qvh_prediction,
    read_jsonl,
    thumos_map,
    write_jsonl,
)
from bestshot.models import CLIPDualEncoder, ShotVL, from_pretrained, load_model, save_model
from bestshot.posecodes import (
    POSECODES,
    describe,
    extract_posecodes,
    posecode_match,
    posecode_values,
    select_posecodes,
)
from bestshot.retrieval import query, read_video, retention_r1, score_frames, smooth_scores
from bestshot.wiseft import select_alpha, weight_average

__all__ = ["POSECODES", "extract_posecodes", "posecode_values", "select_posecodes", "describe",
           "posecode_match", "compose", "paraphrase", "stage_phrase", "furthest_point_sampling",
           "ShotVL", "CLIPDualEncoder", "from_pretrained", "load_model", "save_model",
           "contrastive_loss", "query", "read_video", "score_frames", "smooth_scores",
           "retention_r1", "weight_average", "select_alpha",
           "highlight_metrics", "frame_ap", "thumos_map", "load_thumos_annotations",
           "load_actionformer_json", "read_jsonl", "write_jsonl", "qvh_prediction", "VideoSet",
           "generate_split", "caption_frames", "make_queries", "VideoConfig", "CaptionConfig",
           "ModelConfig", "TrainConfig", "BenchConfig"]
