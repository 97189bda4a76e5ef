"""Streams and real-format loaders.

* Synthetic streams: single-action clips from the project's human-motion generator
  (`shared.motion`: a 3D skeleton rendered through a moving camera, distractors, occluders),
  trimmed to the action's visible onset (`render_truth`, `stream.onset_m`) so "the first
  frames" are the action's first frames, as in UCF-101's trimmed clips; the frames cut are
  made up at the end by the generator's continuation of the scene (no frame copies). Every
  clip goes through the real codec path (`edgeoar.codec`: H.264 encode, decode with motion
  vectors), and the decoded modalities are cached (`shared.cache`): rgb uint8 (N, T, H, W, 3),
  mv (N, T, 2, G, G), part (N, T, 1, G, G), diff (N, T, 1, G, G) as float16, label (N,),
  early (N,) (the class is not in a temporal-only pair, `temporal_only`; set on loading,
  not cached), early_gen (N,) (the generator's own `early_separable` flag) and decode_s (N,)
  seconds.
  Splits draw from disjoint seeds; the out-of-family split ("ood") uses the `ood_motion`
  generator settings (other camera and body ranges, background family, more distractors) and
  is never used for training or threshold selection.
* UCF-101 (`ucf101_split`, `load_video`): the official layout `UCF-101/<Class>/v_*.avi` with
  `ucfTrainTestlist/classInd.txt`, `trainlist0N.txt` and `testlist0N.txt`, read with PyAV.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from pathlib import Path

import numpy as np

from edgeoar.codec import decode, encode_h264, frame_difference
from edgeoar.config import CodecConfig, StreamConfig, TrainConfig
from shared.cache import cached_arrays
from shared.config import to_dict
from shared.errors import ConfigError, DataError
from shared.log import progress
from shared.validate import read_text

__all__ = ["SPLITS", "class_names", "check_stream", "early_separable", "shared_prefix_phase",
           "is_time_reversal", "temporal_only", "clip_seed", "onset_index", "render_truth",
           "render_clip",
           "codec_modalities", "build_split", "load_split", "ucf101_split", "load_video",
           "DATA_VERSION", "data_version"]

DATA_VERSION = 3  # 2: clips trimmed to the action's onset; 3: the tail rendered, not held
SPLITS = ("train", "val", "test", "ood")
_SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000, "ood": 3_000_000}


def _motion():
    import shared.motion as motion

    return motion


def data_version() -> str:
    """Cache version of the streams (and of models trained on them): this module's and the
    generator's."""
    return f"{DATA_VERSION}-motion{_motion().MOTION_VERSION}"


def class_names(sc: StreamConfig) -> list[str]:
    """The classes: `stream.actions`, or every action of the generator."""
    actions = _motion().ACTIONS
    names = list(sc.actions) or list(actions)
    unknown = [a for a in names if a not in actions]
    if unknown:
        raise ConfigError(f"stream.actions: unknown action '{unknown[0]}' (known: "
                          f"{', '.join(actions)})")
    return names


def check_stream(sc: StreamConfig) -> list[str]:
    """Fail early (ConfigError naming the key) on unknown actions or generator settings;
    -> the class names."""
    names = class_names(sc)
    motion_config(sc, ood=False)
    motion_config(sc, ood=True)
    return names


def early_separable(names: list[str]) -> np.ndarray:
    """(K,) bool: the generator's flag for actions told apart from their first frames."""
    actions = _motion().ACTIONS
    return np.array([bool(actions[a].early_separable) for a in names])


def _poses(action: str, phase: np.ndarray, params: dict) -> np.ndarray:
    angles, root = _motion().ACTIONS[action].pose(phase, params)
    return np.concatenate([angles.reshape(len(phase), -1), root], 1)


def _param_draws(a: str, b: str, draws: int) -> list[dict]:
    """Default parameters and `draws` random ones, the same for both actions (as the generator
    gives two clips of one seed when the actions take the same parameters)."""
    actions = _motion().ACTIONS
    rng = np.random.default_rng(0)
    out = [{**actions[a].default_params(), **actions[b].default_params()}]
    for _ in range(draws):
        out.append({**actions[b].sample_params(rng), **actions[a].sample_params(rng)})
    return out


def shared_prefix_phase(a: str, b: str, n: int = 1001, draws: int = 4, atol: float = 1e-9
                        ) -> float:
    """The action phase up to which actions `a` and `b` have the same pose (joint angles and
    root) by construction, for the default and a few random parameter draws: 0 when their first
    poses differ, 1 when the actions coincide."""
    p = np.linspace(0.0, 1.0, n)
    first_diff = n
    for q in _param_draws(a, b, draws):
        diff = np.abs(_poses(a, p, q) - _poses(b, p, q)).max(1) > atol
        first_diff = min(first_diff, int(np.argmax(diff)) if diff.any() else n)
    return 1.0 if first_diff == n else float(p[max(first_diff - 1, 0)]) if first_diff else 0.0


def is_time_reversal(a: str, b: str, n: int = 1001, draws: int = 4, atol: float = 1e-9) -> bool:
    """True iff `b` is `a` played backwards (pose_b(p) = pose_a(1 - p) for every phase): the
    two differ only in time order."""
    p = np.linspace(0.0, 1.0, n)
    return all(np.abs(_poses(a, 1 - p, q) - _poses(b, p, q)).max() <= atol
               for q in _param_draws(a, b, draws))


def temporal_only(names: list[str], min_phase: float = 0.05) -> np.ndarray:
    """(K,) bool: the class is in a temporal-only pair of `names`, i.e. a pair that differs
    only in time order (`is_time_reversal`) AND whose first frames are identical by
    construction (the same pose over the first `min_phase` of the action or more,
    `shared_prefix_phase`). A time-reversed pair whose start poses differ (sit_down: standing,
    stand_up: seated) is told apart from frame 1 and does not count; the generator's
    `early_separable` flag counts it (`early_separable`)."""
    return _temporal_only(tuple(names), float(min_phase)).copy()


@functools.lru_cache(maxsize=64)
def _temporal_only(names: tuple[str, ...], min_phase: float) -> np.ndarray:
    out = np.zeros(len(names), bool)
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            if is_time_reversal(a, b) and shared_prefix_phase(a, b) >= min_phase:
                out[i] = out[j] = True
    return out


def motion_config(sc: StreamConfig, ood: bool):
    """The generator config of a split: one segment, the clip length, in-family or OOD."""
    motion = _motion()
    base = motion.MotionConfig()
    over = dict(sc.motion)
    if ood:
        over.update(sc.ood_motion)
    fields = {f.name for f in dataclasses.fields(base)}
    bad = sorted(set(over) - fields)
    if bad:
        key = "stream.ood_motion" if ood and bad[0] in sc.ood_motion else "stream.motion"
        raise ConfigError(f"{key}: unknown generator setting '{bad[0]}' (known: "
                          f"{', '.join(sorted(fields))})")
    fps = int(round(sc.fps))
    over.update(image_size=sc.image_size, fps=fps, clip_seconds=sc.clip_frames / fps,
                segments=1)
    try:
        return dataclasses.replace(base, **{k: v for k, v in over.items() if k in fields})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"stream.motion: {e}") from None


def clip_seed(sc: StreamConfig, split: str, i: int, k: int) -> int:
    """The generator seed of clip i of class k in a split (splits draw from disjoint seeds)."""
    return _SEED_BASE[split] + 10_000_000 * sc.seed + i * len(class_names(sc)) + k


def onset_index(joints3d: np.ndarray, thr: float) -> int:
    """(T, J, 3) world joint positions -> the 0-based index of the first frame in which some
    joint is at least `thr` metres from its frame-0 position (T when none is): where the
    action becomes visible (camera motion does not count)."""
    moved = np.linalg.norm(joints3d - joints3d[:1], axis=-1).max(-1) >= thr
    return int(np.argmax(moved)) if moved.any() else len(joints3d)


def render_truth(sc: StreamConfig, action: str, seed: int, ood: bool = False) -> dict:
    """One clip of `action` and its ground truth, trimmed to the action's onset.

    The generator compresses the whole action into the clip behind a short idle hold, and its
    key poses ease in, so a joint first moves visibly 1-6 frames in. With `stream.onset_m` > 0
    the clip starts at the last frame before some joint has moved `onset_m` metres (the first
    frame is the start pose, the second shows the first motion), as a trimmed UCF-101 clip
    starts at the action. The frames cut at the start are made up at the end by rendering the
    continuation of the scene (`generate_clip(..., tail_frames)`: the person holds the end pose
    with the generator's idle sway, the camera keeps moving, every frame has its own sensor
    noise), so no frame is a copy of another and the tail shows nothing the generator's own
    end hold does not. The onset is read on the generator's plain timeline, whose frames are
    the first ones of the continued render bit for bit. -> frames uint8 (T, H, W, 3),
    joints3d (T, J, 3), phase (T,), start (frames cut), raw_joints3d / raw_phase (the
    generator's untrimmed timeline)."""
    mc, n = motion_config(sc, ood), sc.clip_frames
    plain = mc.n_frames  # the generator may round the clip a frame short: render one more

    def render(tail: int):
        return _motion().generate_clip(mc, seed, actions=[action],
                                       tail_frames=max(n - plain, 0) + tail)

    clip = render(n // 2 if sc.onset_m > 0 else 0)  # covers the usual cut (< 4 frames)
    j3, ph = np.asarray(clip.joints3d), np.asarray(clip.phase)
    start = max(onset_index(j3[:plain], sc.onset_m) - 1, 0) if sc.onset_m > 0 else 0
    if start + n > len(j3):
        clip = render(start)
        j3, ph = np.asarray(clip.joints3d), np.asarray(clip.phase)
    return {"frames": np.ascontiguousarray(np.asarray(clip.frames)[start:start + n]),
            "joints3d": j3[start:start + n], "phase": ph[start:start + n], "start": start,
            "raw_joints3d": j3[:n], "raw_phase": ph[:n]}


def render_clip(sc: StreamConfig, action: str, seed: int, ood: bool = False) -> np.ndarray:
    """uint8 (T, H, W, 3): one clip of `action` from the generator, trimmed to the action's
    onset (`render_truth`; T = stream.clip_frames)."""
    return render_truth(sc, action, seed, ood)["frames"]


def codec_modalities(frames: np.ndarray, fps: float, cc: CodecConfig) -> dict[str, np.ndarray]:
    """The codec round trip of one clip: decoded rgb, mv, part, the frame-difference fallback
    and the decode time (seconds)."""
    blob = encode_h264(frames, fps, cc.gop, cc.crf, cc.preset)
    t0 = time.perf_counter()
    d = decode(blob, cell=cc.cell)
    dt = time.perf_counter() - t0
    return {"rgb": d["rgb"], "mv": d["mv"], "part": d["part"],
            "diff": frame_difference(d["rgb"], cc.cell), "decode_s": np.float64(dt),
            "bytes": np.int64(len(blob))}


def build_split(cfg: TrainConfig, split: str, render=None) -> dict[str, np.ndarray]:
    """Render, encode and decode every clip of a split (not cached; see `load_split`).
    `render(sc, action, seed, ood) -> uint8 (T, H, W, 3)` replaces `render_clip` (probes)."""
    render = render or render_clip
    sc = cfg.stream
    names = class_names(sc)
    per = {"train": sc.train_per_class, "val": sc.val_per_class, "test": sc.test_per_class,
           "ood": sc.ood_per_class}[split]
    out: dict[str, list] = {k: [] for k in ("rgb", "mv", "part", "diff", "decode_s", "bytes",
                                            "label")}
    jobs = [(k, i) for i in range(per) for k in range(len(names))]
    for k, i in progress(jobs, desc=f"{split} clips"):
        frames = render(sc, names[k], clip_seed(sc, split, i, k), ood=split == "ood")
        mods = codec_modalities(frames, sc.fps, cfg.codec)
        for key, v in mods.items():
            out[key].append(v)
        out["label"].append(k)
    arr = {k: np.stack(v) for k, v in out.items()}
    for k in ("mv", "part", "diff"):
        arr[k] = arr[k].astype(np.float16)
    return _with_groups(arr, names)


def _with_groups(arr: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    arr["early"] = ~temporal_only(names)[arr["label"]]
    arr["early_gen"] = early_separable(names)[arr["label"]]
    return arr


def load_split(cfg: TrainConfig, split: str) -> dict[str, np.ndarray]:
    """`build_split`, cached under the stream + codec config."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}' (use one of {SPLITS})")
    sc = to_dict(cfg.stream)
    per = {"train": "train_per_class", "val": "val_per_class", "test": "test_per_class",
           "ood": "ood_per_class"}
    for s, k in per.items():
        if s != split:
            sc.pop(k)
    if split != "ood":
        sc.pop("ood_motion")
    key = {"split": split, "stream": sc, "codec": to_dict(cfg.codec)}
    arr = cached_arrays("edgeoar-streams", key, lambda: build_split(cfg, split),
                        version=data_version())
    return _with_groups(dict(arr), class_names(cfg.stream))  # derived, not cached


# ----------------------------------------------------------------------------- UCF-101

_CLASS_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s*$")
_PATH = re.compile(r"^[A-Za-z0-9_\-]+/v_[A-Za-z0-9_\-]+\.avi$")


def _class_index(root: Path) -> list[str]:
    f = root / "ucfTrainTestlist" / "classInd.txt"
    names: list[str] = []
    for n, line in enumerate(read_text(f).splitlines(), 1):
        if not line.strip():
            continue
        m = _CLASS_LINE.match(line)
        if not m:
            raise DataError(f"{f}:{n}: expected '<index> <ClassName>', got {line[:60]!r}")
        if int(m.group(1)) != len(names) + 1:
            raise DataError(f"{f}:{n}: class index {m.group(1)} out of order "
                            f"(expected {len(names) + 1})")
        if m.group(2) in names:
            raise DataError(f"{f}:{n}: duplicate class {m.group(2)}")
        names.append(m.group(2))
    if not names:
        raise DataError(f"{f}: no classes")
    return names


def ucf101_split(root: str | Path, split: int = 1, subset: str = "train"
                 ) -> tuple[list[tuple[Path, int]], list[str]]:
    """([(video path, 0-based label)], class names) of UCF-101's official split.

    `root` holds `UCF-101/<Class>/v_<Class>_gGG_cCC.avi` and `ucfTrainTestlist/`. trainlist
    lines are '<Class>/<file>.avi <1-based label>' (the label must match the folder's class);
    testlist lines are the path only. A missing or malformed file is a one-line DataError
    naming the file and line; listed videos must exist."""
    root = Path(root)
    if split not in (1, 2, 3) or subset not in ("train", "test"):
        raise ConfigError(f"UCF-101: split must be 1..3 and subset train|test, got "
                          f"{split}, {subset!r}")
    names = _class_index(root)
    index = {n: i for i, n in enumerate(names)}
    f = root / "ucfTrainTestlist" / f"{subset}list0{split}.txt"
    items: list[tuple[Path, int]] = []
    for n, line in enumerate(read_text(f).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{f}:{n}"
        if len(parts) > 2 or (subset == "test" and len(parts) != 1):
            raise DataError(f"{where}: unexpected fields in {line[:80]!r}")
        rel = parts[0]
        if not _PATH.match(rel):
            raise DataError(f"{where}: not a '<Class>/v_<name>.avi' path: {rel[:80]!r}")
        cls = rel.split("/")[0]
        if cls not in index:
            raise DataError(f"{where}: class folder '{cls}' is not in classInd.txt")
        if len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) != index[cls] + 1:
                raise DataError(f"{where}: label {parts[1][:20]!r} does not match class "
                                f"{cls} ({index[cls] + 1})")
        path = root / "UCF-101" / rel
        if not path.is_file():
            raise DataError(f"{where}: video not found: {path}")
        items.append((path, index[cls]))
    if not items:
        raise DataError(f"{f}: no videos listed")
    return items, names


def load_video(path: str | Path, frames: int, size: int, cell: int = 4
               ) -> dict[str, np.ndarray]:
    """The first `frames` frames of any video PyAV reads, resized to size x size, with the
    codec's motion vectors and partition (zeros where the codec exports none, e.g. MPEG-4 Part
    2 in UCF-101's AVIs still exports them) and the frame difference. Short videos hold their
    last frame. -> rgb, mv, part, diff, fps."""
    d = decode(path, cell=cell, max_frames=frames, size=size)
    out = {k: d[k] for k in ("rgb", "mv", "part")}
    short = frames - len(out["rgb"])
    if short > 0:
        out["rgb"] = np.concatenate([out["rgb"], np.repeat(out["rgb"][-1:], short, 0)])
        for k in ("mv", "part"):
            out[k] = np.concatenate([out[k], np.zeros((short, *out[k].shape[1:]), np.float32)])
    out["diff"] = frame_difference(out["rgb"], cell)
    out["fps"] = d["fps"]
    return out
