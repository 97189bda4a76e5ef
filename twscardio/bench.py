"""`python -m twscardio.bench [--quick] [--out DIR] [--workers N]`: arms (a)-(d) side by side,
sweeps, checks.

The test subjects run on one process per usable CPU core, at most 8 (`--workers N`, or `--set
workers=N`; 1: this process alone); the figures are the same for any number of workers.

Arms, all on the same held-out simulated subjects and seeds:
  (a) linear fill + spline upsampling + J peaks on the best single accelerometer axis (by SQI);
  (b) (a) with the enhancement front-end + gyro-referenced cancellation + multi-axis fusion;
  (c) (b) + BCG->SCG network trained with plain L1 (the public code's loss), AO beats;
  (d) full: the same network trained with the region-focused loss;
  (e) beat-synchronous SCG: (b)'s J peaks, a learned J -> AO timing from the recording's median
      BCG and gyro complexes, the SCG template at the predicted AO/AC (`twscardio.beatsync`).
Sweeps: packet loss x burst length (50 Hz, rest), input rate (10 % loss, rest), motion level
(25 Hz, 20 % loss). Out of family: every arm on `twscardio.outfamily` recordings (another rhythm
source, beat complex, coupling, noise and loss model; never used for training or tuning).
Octave errors per 5-s window; SQI rejection of pure-noise / no-contact windows and of clean-beat
windows, in- and out-of-family; streaming HR error tails (mean, median, p95, share > 10 bpm).
Real time: processing time of one 5-s window through the whole pipeline, and a stream pushed
packet by packet through `StreamingMonitor`.
Writes bench.json (rows, ratios, checks, headline), bench.md, bench.png, sweeps.png, overlay.png.
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial

import numpy as np

from shared.bench import BenchReport, measure, save_figure
from shared.cli import build_parser, parse_args, run
from shared.errors import UserError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, progress
from shared.runtime import cpu_count, set_seed
from twscardio.beats import beat_metrics, find_jpeaks
from twscardio.config import BenchConfig, TrainConfig
from twscardio.data import subject_seed
from twscardio.eval import aggregate, evaluate_recording, simulate_test
from twscardio.fusion import bandpass
from twscardio.outfamily import simulate_out_of_family
from twscardio.pipeline import J_WAVE_SHIFT_S, prepare, process
from twscardio.simulator import simulate_no_beat
from twscardio.stream import StreamingMonitor

__all__ = ["arm_configs", "setting_config", "test_recording", "stream", "stream_errors",
           "main"]

log = get_logger("twscardio.bench")
ARMS = ["a", "b", "c", "d", "e"]


def arm_configs(bc: BenchConfig) -> dict[str, TrainConfig]:
    """The network arms: (c) plain L1, (d) region-focused; otherwise identical."""
    return {"c": replace(bc.train, loss=replace(bc.train.loss, kind="l1")),
            "d": replace(bc.train, loss=replace(bc.train.loss, kind="region"))}


def setting_config(bc: BenchConfig, fs_in: float, loss: float, burst: float,
                   motion: float) -> TrainConfig:
    chan = replace(bc.train.sim.channel, loss=loss, burst=burst)
    sim = replace(bc.train.sim, fs_in=fs_in, motion_level=motion, channel=chan,
                  duration_s=bc.duration_s)
    return replace(bc.train, sim=sim)


def oracle_single_axis_hr(rec: dict, cfg: TrainConfig) -> float:
    """HR MAE of the best of the 6 accel axes for this recording (chosen with the truth)."""
    prep = prepare(rec, cfg)
    acc = np.concatenate([prep["X_lin"][:, 0:3], prep["X_lin"][:, 6:9]], axis=1)
    acc_bp = bandpass(acc, prep["fs"], cfg.fusion.band_hz)
    return min(beat_metrics(find_jpeaks(acc_bp[:, i], prep["fs"], wave_shift_s=J_WAVE_SHIFT_S),
                            rec["truth"],
                            fallback=acc_bp[:, i])["hr_mae"] for i in range(6))


def test_recording(cfg: TrainConfig, i: int, duration_s: float, family: str = "in",
                   outage_s: float = 0.0) -> dict:
    """Held-out subject i of the training family ("in") or of the out-of-family generator."""
    if family == "in":
        return simulate_test(cfg, i, duration_s)
    return simulate_out_of_family(replace(cfg.sim, duration_s=duration_s), i, outage_s=outage_s)


_MODELS: dict = {}  # the models of the subject jobs: the bench's own, or a worker's copy


def _init_worker(models: dict) -> None:
    """A pool worker: one torch thread, the bench's models."""
    import torch

    torch.set_num_threads(1)
    _MODELS.update(models)


MAX_AUTO_WORKERS = 8  # workers=0 takes the usable cores up to this (each worker ~0.45 GB)


def auto_workers() -> int:
    """The usable CPU cores (`shared.runtime.cpu_count`: affinity and cgroup quota), at most
    MAX_AUTO_WORKERS."""
    return max(1, min(cpu_count(), MAX_AUTO_WORKERS))


class SubjectMap:
    """Runs the bench's per-subject jobs in subject order, in this process (workers 1) or on
    `workers` spawned processes (0: `auto_workers`) that receive the models once. Every job
    is a function of its arguments and the models alone, and the networks run on one torch
    thread in either case (a convolution's sums are ordered by its threads), so the figures do
    not depend on the number of workers (tested)."""

    def __init__(self, workers: int, models: dict, jobs: int | None = None):
        """jobs: the most jobs one call maps (no more workers than that are started)."""
        self.workers = min(workers or auto_workers(), jobs or 1 << 30)
        self.models = models
        self._pool: ProcessPoolExecutor | None = None
        self._threads = 0

    def __enter__(self) -> SubjectMap:
        import torch

        _MODELS.clear()
        _MODELS.update(self.models)
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.models,))
        else:
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._threads:
            torch.set_num_threads(self._threads)
            self._threads = 0

    def __call__(self, fn, n: int) -> list:
        """[fn(i) for i in range(n)] (fn picklable: a module function or its partial)."""
        if self._pool is None:
            return list(map(fn, range(n)))
        return list(self._pool.map(fn, range(n)))


def _evaluate_subject(cfg: TrainConfig, i: int, duration_s: float, family: str,
                      outage_s: float, oracle: bool) -> tuple[dict, float | None]:
    """Test subject i of one setting: every arm's metrics, and the oracle single axis's HR MAE
    when asked."""
    rec = test_recording(cfg, i, duration_s, family, outage_s)
    return (evaluate_recording(rec, cfg, _MODELS),
            oracle_single_axis_hr(rec, cfg) if oracle else None)


def run_setting(bc: BenchConfig, pmap: SubjectMap, label: str, cfg: TrainConfig,
                keep_example: bool = False, oracle: bool = False, family: str = "in",
                outage_s: float = 0.0, keep: dict | None = None) -> tuple[dict, dict | None]:
    """One setting on the bench's test subjects -> ({arm: metrics}, the first recording with
    arms (c)-(e) when keep_example). keep: a dict that receives {label: {"res": per-recording
    results, "oracle": per-recording oracle single-axis HR MAE}} for `check_intervals`."""
    out = pmap(partial(_evaluate_subject, cfg, duration_s=bc.duration_s, family=family,
                       outage_s=outage_s, oracle=oracle), bc.n_test_subjects)
    res = [r for r, _ in out]
    orc = [o for _, o in out] if oracle else []
    example = None
    if keep_example:
        rec = test_recording(cfg, 0, bc.duration_s, family, outage_s)
        example = {"rec": rec, **{a: process(rec, cfg, a, pmap.models[a]) for a in "cde"}}
    agg = aggregate(res)
    if oracle:
        agg["a"]["hr_mae_oracle_axis"] = float(np.mean(orc))
    if keep is not None:
        keep[label] = {"res": res, "oracle": orc}
    log.info("%s: %s", label, ", ".join(f"{a} HR {m['hr_mae']:.2f} IBI {m['ibi_mae_ms']:.1f}"
                                       for a, m in agg.items()))
    return agg, example


def realtime(bc: BenchConfig, model) -> dict:
    """Whole-pipeline processing time per 5-s window and for a packet stream."""
    cfg = setting_config(bc, 25.0, 0.1, 3.0, 0.0)
    rec = simulate_test(cfg, 0, max(bc.stream_seconds, 10.0))
    win = {"left": None, "right": None, "fs_in": rec["fs_in"], "duration_s": 5.0}
    for side in ("left", "right"):
        b = rec[side]
        sel = b["relative_time"] < 5.0
        win[side] = {k: v[sel] for k, v in b.items()}
    m = measure(lambda: process(win, cfg, "d", model), warmup=2, repeats=10)
    per_window = m["median_s"]
    t0 = time.perf_counter()
    updates = stream(rec, cfg, model)
    total = time.perf_counter() - t0
    hr_err = float(np.nanmedian(stream_errors(updates, rec["truth"])))
    return {"window_s": 5.0, "per_window_s": per_window, "rtf_window": 5.0 / per_window,
            "stream_signal_s": float(rec["duration_s"]), "stream_proc_s": total,
            "rtf_stream": float(rec["duration_s"]) / total, "updates": len(updates),
            "update_proc_s_max": float(max(u.proc_s for u in updates)),
            "latency_bound_s": 1.0 + 0.7 + float(max(u.proc_s for u in updates)),
            "stream_hr_abs_err_median": hr_err}


def stream(rec: dict, cfg: TrainConfig, model, hr=None) -> list:
    """Push a recording's packets through `StreamingMonitor` in arrival order -> updates
    (hr: a `stream.RobustHeartRate` with other settings, default the monitor's own)."""
    mon = StreamingMonitor(cfg, model, window_s=5.0, hop_s=1.0, fs_in=rec["fs_in"], hr=hr)
    spp = cfg.sim.channel.samples_per_packet
    events = []
    for side in ("left", "right"):
        b = rec[side]
        for k in range(0, len(b["relative_time"]), spp):
            events.append((b["relative_time"][k], side, slice(k, k + spp)))
    events.sort(key=lambda e: e[0])
    updates = []
    for _, side, sl in events:  # packets in arrival order (the stream is the loop)
        b = rec[side]
        updates += mon.push(side, b["relative_time"][sl], b["acc"][sl], b["gyro"][sl])
    return updates


def stream_errors(updates: list, truth: dict, window_s: float = 5.0) -> np.ndarray:
    """|HR - true HR| (bpm) per update; true HR = 60 / median RR of the update's window; NaN
    for "no reliable beat" updates."""
    r = truth["r_s"]
    err = []
    for u in updates:
        rr = np.diff(r[(r >= u.t_end - window_s) & (r < u.t_end)])
        ref = 60.0 / np.median(rr) if rr.size else np.nan
        err.append(abs(u.hr_bpm - ref))
    return np.array(err, dtype=np.float64)


def tail_summary(errs: list[np.ndarray]) -> dict:
    """Mean / median / p95 / share > 10 bpm of the finite |HR error| of the recordings' updates
    (errs: one array per recording, NaN for "no reliable beat"), coverage and update count."""
    err = np.concatenate(errs)
    e = err[np.isfinite(err)]
    return {"mean": float(e.mean()), "median": float(np.median(e)),
            "p95": float(np.percentile(e, 95)), "share_gt10": float((e > 10).mean()),
            "coverage": float(e.size / err.size), "updates": int(err.size)}


def _stream_subject(cfg: TrainConfig, i: int, duration_s: float, family: str,
                    arm: str) -> np.ndarray:
    """`stream_errors` of test subject i streamed through arm (b) (no model) or (d)."""
    rec = test_recording(cfg, i, duration_s, family)
    return stream_errors(stream(rec, cfg, _MODELS["d"] if arm == "d" else None), rec["truth"])


def stream_tails(bc: BenchConfig, pmap: SubjectMap, keep: dict | None = None) -> dict:
    """{family: {arm: `tail_summary`}} of the streaming API at 50 Hz / 10 % loss: arm (b)
    without a model (fused J peaks), (d) with it. keep: receives {"stream": {family: {arm:
    per-recording error arrays}}} for `check_intervals`."""
    cfg = setting_config(bc, 50.0, 0.1, 3.0, 0.0)
    out: dict[str, dict] = {}
    for family in ("in", "out"):
        for arm in ("b", "d"):
            errs = pmap(partial(_stream_subject, cfg, duration_s=bc.duration_s, family=family,
                                arm=arm), bc.n_test_subjects)
            out.setdefault(family, {})[arm] = tail_summary(errs)
            if keep is not None:
                keep.setdefault("stream", {}).setdefault(family, {})[arm] = errs
    log.info("streaming |HR error|: %s", out)
    return out


def _no_beat_subject(cfg: TrainConfig, i: int, duration_s: float, family: str,
                     kind: str) -> dict[str, float]:
    """{arm: share of windows rejected} of heartbeat-free recording i ("noise" or "no_contact")
    of the training simulator's kind (family "in") or of the out-of-family generator."""
    sc = replace(cfg.sim, duration_s=duration_s)
    rec = (simulate_no_beat(sc, subject_seed("test", 500 + i), kind) if family == "in"
           else simulate_out_of_family(sc, 500 + i, kind))
    return {arm: float(1 - process(rec, cfg, arm)["windows"]["reliable"].mean())
            for arm in ("a", "b")}


def sqi_rejection(bc: BenchConfig, pmap: SubjectMap, keep: dict | None = None) -> dict:
    """{family: {kind: {arm: share of windows rejected}}}: heartbeat-free recordings
    (pure noise, no contact) of the training simulator's kind and of the out-of-family one.
    keep: receives {"sqi": {family: {kind: {arm: per-recording shares}}}}."""
    cfg = setting_config(bc, 50.0, 0.1, 3.0, 0.0)
    out: dict[str, dict] = {}
    for family in ("in", "out"):
        for kind in ("noise", "no_contact"):
            shares = pmap(partial(_no_beat_subject, cfg, duration_s=bc.duration_s,
                                  family=family, kind=kind), bc.n_test_subjects)
            per = {arm: [s[arm] for s in shares] for arm in ("a", "b")}
            out.setdefault(family, {})[kind] = {arm: float(np.mean(v)) for arm, v in per.items()}
            if keep is not None:
                keep.setdefault("sqi", {}).setdefault(family, {})[kind] = per
    log.info("SQI rejection of heartbeat-free windows: %s", out)
    return out


def check_values(results: dict, rt: dict, sqi: dict, tails: dict) -> list[float]:
    """Every check's measured value, in the bench's order, from these figures (`checks` and
    `generalisation_checks` on a scratch report)."""
    rep = BenchReport("twscardio", baseline="a")
    checks(rep, results, rt)
    generalisation_checks(rep, results, sqi, tails)
    return [c.measured for c in rep.checks]


def check_intervals(keep: dict, rt: dict, n: int, draws: int, seed: int = 0) -> list[dict]:
    """95 % subject-level bootstrap interval of every check -> [{"lo", "hi"}] in check order.

    Each draw takes n subject indices with replacement, the same indices in every setting (test
    subject i is one simulated person across settings; the heartbeat-free recordings and the
    streamed recordings by their own index), recomputes each setting's metrics from the kept
    per-recording results (`eval.aggregate`, the oracle mean, `tail_summary`, the SQI means) and
    every check's value with the bench's own code (`check_values`). The real-time figure `rt` is
    not resampled. keep: what `run_setting`, `stream_tails` and `sqi_rejection` kept."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(draws):
        idx = rng.integers(0, n, n)
        results = {}
        for label in CHECKED:
            k = keep[label]
            agg = aggregate([k["res"][i] for i in idx])
            if k["oracle"]:
                agg["a"]["hr_mae_oracle_axis"] = float(np.mean([k["oracle"][i] for i in idx]))
            results[label] = agg
        tails = {fam: {arm: tail_summary([errs[i] for i in idx]) for arm, errs in per.items()}
                 for fam, per in keep["stream"].items()}
        sqi = {fam: {kind: {arm: float(np.mean([v[i] for i in idx])) for arm, v in per.items()}
                     for kind, per in kinds.items()} for fam, kinds in keep["sqi"].items()}
        vals.append(check_values(results, rt, sqi, tails))
    v = np.array(vals, dtype=np.float64)
    lo, hi = np.nanpercentile(v, 2.5, axis=0), np.nanpercentile(v, 97.5, axis=0)
    return [{"lo": float(a), "hi": float(b)} for a, b in zip(lo, hi)]


def _plot_sweeps(path, sweeps: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (name, (xs, rows, metric)) in zip(axes, sweeps.items()):
        for arm in ARMS:
            ax.plot(xs, [r[arm][metric] for r in rows], marker="o", label=f"({arm})")
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("twscardio: error vs packet loss (burst 3), input rate, motion level")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _plot_overlay(path, ex: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = ex["rec"]["truth"]
    fs = float(tr["fs_ref"])
    s, e = int(10 * fs), int(16 * fs)
    t = tr["t"][s:e]
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True)
    for ax, arm in zip(axes, ("e", "d", "c")):
        ref = tr["scg"][s:e] / tr["scg"][s:e].std()
        rec = ex[arm]["scg"][s:e]
        ax.plot(t, ref, "k", lw=1.2, label="reference SCG")
        ax.plot(t, rec / (rec.std() + 1e-12), {"e": "C0", "d": "C1", "c": "C2"}[arm], lw=1,
                label=f"reconstructed ({arm})")
        for k, (name, c) in enumerate((("ao_s", "r"), ("ac_s", "b"))):
            sel = (tr[name] >= t[0]) & (tr[name] < t[-1])
            ax.vlines(tr[name][sel], -3, 4, colors=c, linestyles=":",
                      label=f"true {name[:2].upper()}")
            det = ex[arm][name]
            det = det[(det >= t[0]) & (det < t[-1])]
            ax.plot(det, np.full(det.size, 3.6 - 0.4 * k), c + "v",
                    label=f"detected {name[:2].upper()}")
        ax.set_ylim(-3, 4.2)
        ax.legend(fontsize=7, ncol=3, loc="lower right")
        ax.set_title({"e": "(e) beat-synchronous (J peaks + learned timing + template)",
                      "d": "(d) network, region-focused loss", "c": "(c) network, plain L1"}[arm])
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# --quick: fewer training steps, many short training subjects (1536 x 10 s: on the randomised
# family distinct subjects, not steps, decide generalisation - 48 x 60 s fit training subjects at
# window r 0.89 and validation at 0.14), three test subjects, a shorter sweep
# (morphology restated for the reader; partial overrides keep TrainConfig.sim's own default)
QUICK = {"train.steps": 3000, "train.n_subjects": 1536, "train.sim.duration_s": 10.0,
         "train.sim.morphology": "randomised",
         # the former timing model (9,000 subjects x 4 members) and blur: a fresh machine
         # simulates a fifth of the full one's subjects for it, and the quick networks keep their
         # prior
         "train.sync.blocks": [3000, 6000], "train.sync.members": 4, "train.sync.blur_ao_ms": 4.0,
         "train.loss.local_r_weight": 0.0,  # the quick networks' loss (their weights unchanged)
         "n_test_subjects": 3, "duration_s": 40.0,
         "loss_sweep": [0.0, 0.1, 0.2, 0.3], "burst_sweep": [3.0], "stream_seconds": 20.0}


# the three settings every check reads: rest at 50 Hz, low rate and loss, low rate under motion
MAIN, LOW, MOTION = "50Hz loss10% rest", "25Hz loss20% rest", "25Hz loss20% motion3"


# out-of-family settings: label -> (fs_in, loss, burst, outage_s)
OOF = {"OOF 50Hz loss10% rest": (50.0, 0.1, 3.0, 0.0),
       "OOF 25Hz loss20% rest": (25.0, 0.2, 3.0, 0.0),
       "OOF 50Hz loss10% +1s outages": (50.0, 0.1, 3.0, 1.0),
       "OOF 25Hz loss0% rest": (25.0, 0.0, 3.0, 0.0)}
OOF_MAIN, OOF_LOW = list(OOF)[:2]
# the settings the checks read (every other row is reported, not checked)
CHECKED = (MAIN, LOW, MOTION, OOF_MAIN, OOF_LOW)


def out_of_family(rep: BenchReport, bc: BenchConfig, pmap: SubjectMap, results: dict,
                  keep: dict | None = None) -> None:
    """Every arm on the out-of-family generator's recordings (rows added to `results`)."""
    for label, (fs_in, loss, burst, outage) in progress(OOF.items(), desc="out of family"):
        agg = run_setting(bc, pmap, label, setting_config(bc, fs_in, loss, burst, 0.0),
                          family="out", outage_s=outage, keep=keep)[0]
        _add(rep, results, label, agg)


def trained_models(bc: BenchConfig) -> dict:
    """{arm: model} for the network arms and arm (e)'s timing model, trained or loaded from
    the cache."""
    from twscardio.train import get_model, get_timing_model

    models = {}
    for arm, cfg in arm_configs(bc).items():
        t0 = time.perf_counter()
        models[arm] = get_model(cfg)
        log.info("model %s ready in %.0f s (%s)", arm, time.perf_counter() - t0,
                 getattr(models[arm], "hist", {}).get("val"))
    t0 = time.perf_counter()
    models["e"] = get_timing_model(bc.train)
    log.info("timing model e ready in %.0f s", time.perf_counter() - t0)
    return models


def _add(rep: BenchReport, results: dict, label: str, agg: dict) -> None:
    """Keep one setting's per-arm metrics and add a row per arm."""
    results[label] = agg
    for arm, m in agg.items():
        rep.add(arm, setting=label, **{k: v for k, v in m.items()})


def main_settings(rep: BenchReport, bc: BenchConfig, pmap: SubjectMap,
                  keep: dict | None = None) -> tuple[dict, dict]:
    """The MAIN, LOW and MOTION settings (MOTION also scored on the oracle single axis).
    Returns ({label: {arm: metrics}}, MAIN's first recording with arms (c) and (d) for the
    overlay plot); keep: as `run_setting`'s."""
    results: dict[str, dict] = {}
    agg, example = run_setting(bc, pmap, MAIN, setting_config(bc, 50.0, 0.1, 3.0, 0.0),
                               keep_example=True, keep=keep)
    _add(rep, results, MAIN, agg)
    _add(rep, results, LOW,
         run_setting(bc, pmap, LOW, setting_config(bc, 25.0, 0.2, 3.0, 0.0), keep=keep)[0])
    _add(rep, results, MOTION, run_setting(bc, pmap, MOTION,
                                           setting_config(bc, 25.0, 0.2, 3.0, 3.0),
                                           oracle=True, keep=keep)[0])
    return results, example


def sweeps(rep: BenchReport, bc: BenchConfig, pmap: SubjectMap,
           results: dict) -> dict[str, list]:
    """Packet loss x burst (50 Hz, rest), input rate (10% loss) and motion level (25 Hz, 20%
    loss), reusing the settings already run; adds rows for the new ones. Returns {"loss" (burst 3
    only), "fs", "motion": [{arm: metrics} per sweep value]}."""
    loss_rows, fs_rows, mot_rows = [], [], []
    for burst in progress(bc.burst_sweep, desc="loss x burst"):
        for loss in bc.loss_sweep:
            label = f"50Hz loss{round(loss * 100)}% burst{burst:g} rest"
            if loss == 0.1 and burst == 3.0:
                agg = results[MAIN]
            else:
                agg = run_setting(bc, pmap, label, setting_config(bc, 50.0, loss, burst, 0.0))[0]
                _add(rep, results, label, agg)
            if burst == 3.0:
                loss_rows.append(agg)
    for fs_in in progress(bc.fs_sweep, desc="rate"):
        label = f"{fs_in:g}Hz loss10% rest"
        agg = results[MAIN] if fs_in == 50.0 else run_setting(
            bc, pmap, label, setting_config(bc, fs_in, 0.1, 3.0, 0.0))[0]
        if fs_in != 50.0:
            _add(rep, results, label, agg)
        fs_rows.append(agg)
    for mot in progress(bc.motion_sweep, desc="motion"):
        label = f"25Hz loss20% motion{mot:g}"
        key = MOTION if mot == 3.0 else (LOW if mot == 0.0 else None)
        agg = results[key] if key else run_setting(
            bc, pmap, label, setting_config(bc, 25.0, 0.2, 3.0, mot))[0]
        if key is None:
            _add(rep, results, label, agg)
        mot_rows.append(agg)
    return {"loss": loss_rows, "fs": fs_rows, "motion": mot_rows}


def checks(rep: BenchReport, results: dict, rt: dict) -> None:
    """The package's targets on the figures just measured."""
    m50, m25, mm = results[MAIN], results[LOW], results[MOTION]
    rep.check("50Hz/10% loss/rest: HR MAE (d) <= 2 bpm", m50["d"]["hr_mae"], "<=", 2.0)
    rep.check("50Hz/10% loss/rest: IBI MAE (d) <= 20 ms", m50["d"]["ibi_mae_ms"], "<=", 20.0)
    ibi_gain = 1 - m25["d"]["ibi_mae_ms"] / m25["a"]["ibi_mae_ms"]
    rep.check("25Hz/20% loss: IBI MAE reduction (d) vs (a) >= 30%", ibi_gain, ">=", 0.30)
    hr_gain = 1 - mm["b"]["hr_mae"] / mm["a"]["hr_mae"]
    rep.check("25Hz/20% loss/high motion: HR MAE reduction (b) fusion vs (a) single axis >= 40%",
              hr_gain, ">=", 0.40)
    hr_gain_or = 1 - mm["b"]["hr_mae"] / mm["a"]["hr_mae_oracle_axis"]
    rep.check("  same vs the oracle best single axis per recording >= 40%", hr_gain_or, ">=", 0.40)
    rep.check("rest (50Hz/10%): median per-beat SCG Pearson r (d) >= 0.8",
              m50["d"]["beat_r_median"], ">=", 0.8)
    rep.check("rest (50Hz/10%): median per-beat SCG Pearson r, beat-synchronous (e) >= 0.8",
              m50["e"]["beat_r_median"], ">=", 0.8)
    tim = {a: 0.5 * (m50[a]["ao_mae_ms"] + m50[a]["ac_mae_ms"]) for a in ("c", "d")}
    rep.check("rest: AO/AC timing MAE region-focused (d) / plain L1 (c) < 1", tim["d"] / tim["c"],
              "<", 1.0)
    rep.check("real time: whole pipeline per 5-s window >= 100x real time", rt["rtf_window"],
              ">=", 100.0)


def _defaults_are_fusion() -> bool:
    """Do `process` and `StreamingMonitor` default to arm (b) (fusion + J peaks, no model)?"""
    arm = inspect.signature(process).parameters["arm"].default
    model = inspect.signature(StreamingMonitor).parameters["model"].default
    return arm == "b" and model is None


def generalisation_checks(rep: BenchReport, results: dict, sqi: dict, tails: dict) -> None:
    """Out-of-family accuracy, octave errors, SQI rejection and streaming tails."""
    om, ol = results[OOF_MAIN], results[OOF_LOW]
    best = min(("a", "b", "c", "d"), key=lambda a: om[a]["ibi_mae_ms"])
    rep.check(f"OOF 50Hz/10%: best arm ({best}) HR MAE <= 1 bpm", om[best]["hr_mae"], "<=", 1.0)
    rep.check("  same, (b) on the windows the SQI accepts: HR MAE <= 1 bpm",
              om["b"]["hr_mae_accepted"], "<=", 1.0)
    rep.check(f"OOF 50Hz/10%: best arm ({best}) IBI MAE <= 10 ms", om[best]["ibi_mae_ms"], "<=",
              10.0)
    rep.check("  same, (b) on the windows the SQI accepts: IBI MAE <= 10 ms",
              om["b"]["ibi_mae_ms_accepted"], "<=", 10.0)
    rep.check("OOF 50Hz/10%: network (d) HR MAE <= 2 bpm", om["d"]["hr_mae"], "<=", 2.0)
    rep.check("OOF 50Hz/10%: network (d) IBI MAE <= 20 ms", om["d"]["ibi_mae_ms"], "<=", 20.0)
    rep.check("  or: (d) is not the default (process and StreamingMonitor default to (b); README "
              "names the arm to use)", float(_defaults_are_fusion()), ">=", 1.0)
    best = min(("b", "c", "d"), key=lambda a: ol[a]["ibi_mae_ms"])
    rep.check(f"OOF 25Hz/20%: best arm ({best}) IBI MAE <= 20 ms", ol[best]["ibi_mae_ms"], "<=",
              20.0)
    rep.check(f"OOF 25Hz/20%: best arm ({best}) IBI MAE reduction vs (a) >= 30%",
              1 - ol[best]["ibi_mae_ms"] / ol["a"]["ibi_mae_ms"], ">=", 0.30)
    rep.check("  same, (b) on the windows the SQI accepts: IBI MAE <= 20 ms",
              ol["b"]["ibi_mae_ms_accepted"], "<=", 20.0)
    for fam, labels in (("in-family", (MAIN, LOW)), ("OOF", (OOF_MAIN, OOF_LOW))):
        for arms in (("a", "b"), ("d",)):  # the J-peak detector arms; the network's AO beats
            worst = max(results[lb][a]["octave_pct"] for lb in labels for a in arms)
            rep.check(f"{fam}: octave errors ({'/'.join(arms)}, % of windows, worst of "
                      f"50Hz/10% and 25Hz/20%) <= 1", worst, "<=", 1.0)
        worst = max(results[lb][a]["octave_pct_accepted"] for lb in labels for a in ("a", "b"))
        rep.check(f"  same, {fam} (a/b), on the windows the SQI accepts <= 1", worst, "<=", 1.0)
    for fam, label in (("in-family", MAIN), ("OOF", OOF_MAIN)):
        rep.check(f"{fam}: SQI rejects >= 95% of pure-noise / no-contact windows (worst)",
                  min(min(v.values()) for v in sqi["in" if fam == "in-family" else "out"]
                      .values()), ">=", 0.95)
        rep.check(f"{fam}: SQI rejects <= 5% of clean-beat windows (50Hz/10%, worst arm)",
                  1 - min(results[label][a]["coverage"] for a in ("a", "b")), "<=", 0.05)
    for arm, m in tails["out"].items():
        rep.check(f"OOF streaming ({arm}): share of HR updates > 10 bpm off <= 2%",
                  m["share_gt10"], "<=", 0.02)
        rep.check(f"OOF streaming ({arm}): mean |HR error| <= 2 bpm", m["mean"], "<=", 2.0)


def headlines(rep: BenchReport, results: dict, rt: dict) -> None:
    """The rows of results/SUMMARY.md."""
    m50, m25, mm = results[MAIN], results[LOW], results[MOTION]
    rep.headline("in-ear BCG -> HR/IBI on COTS earbuds (50 Hz, 10% bursty loss, rest)",
                 f"fusion (b), the default: HR MAE {m50['b']['hr_mae']:.2f} bpm, IBI MAE "
                 f"{m50['b']['ibi_mae_ms']:.1f} ms; network (d): {m50['d']['hr_mae']:.2f} bpm, "
                 f"{m50['d']['ibi_mae_ms']:.1f} ms",
                 "(a) single axis J-peaks", m50["a"]["ibi_mae_ms"] / m50["b"]["ibi_mae_ms"],
                 setting=MAIN)
    rep.headline("enhancement + network vs baseline at low rate and loss (IBI MAE)",
                 f"{m25['d']['ibi_mae_ms']:.1f} vs {m25['a']['ibi_mae_ms']:.1f} ms",
                 "(a) single axis J-peaks", m25["a"]["ibi_mae_ms"] / m25["d"]["ibi_mae_ms"],
                 setting=LOW)
    rep.headline("multi-axis fusion under motion (HR MAE)",
                 f"{mm['b']['hr_mae']:.2f} vs {mm['a']['hr_mae']:.2f} bpm",
                 "(a) single axis J-peaks", mm["a"]["hr_mae"] / mm["b"]["hr_mae"], setting=MOTION)
    rep.headline("fine-grained SCG reconstruction (median per-beat r)",
                 f"r = {m50['e']['beat_r_median']:.3f} beat-synchronous (e); network "
                 f"{m50['d']['beat_r_median']:.3f} (d), L1 {m50['c']['beat_r_median']:.3f} (c)",
                 "(c) plain L1", m50["e"]["beat_r_median"] / m50["c"]["beat_r_median"],
                 setting=MAIN)
    rep.headline("real time on 2 CPU cores", f"{rt['rtf_window']:.0f}x real time per 5-s window",
                 "real time (1x)", rt["rtf_window"], setting="25 Hz, 5-s window")


def extras(rep: BenchReport, models: dict, rt: dict, sqi: dict, tails: dict) -> None:
    """HR and IBI ratios vs arm (a), the real-time figures, each network's training record, SQI
    rejection and the streaming error tails."""
    rep.extra["sqi_rejection_no_beat"] = sqi
    rep.extra["stream_hr_error"] = tails
    for metric, lower in (("hr_mae", True), ("ibi_mae_ms", True)):
        rep.extra.setdefault("ratios", []).extend(rep.ratios(metric, lower_is_better=lower))
    rep.extra["realtime"] = rt
    rep.extra["training"] = {a: {k: v for k, v in getattr(m, "hist", {}).items() if k != "loss"}
                             for a, m in models.items()}


def notes(rep: BenchReport, bc: BenchConfig, rt: dict) -> None:
    """What the data and metrics are, and the streaming figures."""
    rep.notes += [
        "In-family: held-out subjects of the training simulator (twscardio.simulator, "
        "morphology 'randomised'); network arms trained on disjoint subjects. Out-of-family "
        "(OOF rows): twscardio.outfamily (ECGSYN's RR model stepped without its ODE, "
        "H-I-J-K-L beat complex, random "
        "coupling, 1/f noise, FIR anti-alias, log-normal loss bursts), never used for training, "
        "SQI calibration or selection.",
        "octave_pct: % of 5-s windows whose detected median interval is nearer a half or a "
        "double of the true one; coverage: share of windows with a reliable beat (SQI); "
        "hr_mae/ibi_mae_ms score every detection (rejected windows included); "
        "ibi_mae_ms_accepted only the beats of windows the SQI accepts (beats_s); "
        "octave_pct_accepted the octave errors of those beats.",
        "hr_mae: per 10-s segment, bpm; ibi_mae_ms: consecutive cycles with one detection each, "
        "vs ECG R-R; beat_r_median: per-beat Pearson r of reconstructed vs reference SCG over "
        "[R-50 ms, R+550 ms], pooled median; coverage: share of windows not rejected.",
        f"Test subjects per setting: {bc.n_test_subjects}, {bc.duration_s:g} s each."
        + (f" check_intervals: each check's 95 % subject-level bootstrap interval "
           f"({bc.bootstrap_draws} draws of the subjects, the same in every setting; real time "
           f"not resampled); verdicts stay on the point estimates." if bc.bootstrap_draws
           else ""),
        f"Streaming (5-s window every 1-s hop, packets pushed one by one): "
        f"{rt['rtf_stream']:.0f}x real time, worst update {rt['update_proc_s_max'] * 1000:.0f} ms, "
        f"latency bound {rt['latency_bound_s']:.2f} s (hop + lookahead + processing).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        "twscardio.bench",
        "Benchmark TWSCardio arms (a) single axis, (b) + fusion, (c) + network/L1, (d) full, "
        "(e) beat-synchronous SCG on "
        "held-out simulated subjects; sweeps over packet loss x burst, input rate and motion; "
        "real-time factor. Trained weights are cached, so reruns only evaluate.",
        default_config=None)
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes for the test subjects (same as --set workers=N; 0, the "
                             "default: one per usable core, at most 8; 1: this process alone); "
                             "the figures do not depend on it")
    args, bc = parse_args(argv, BenchConfig, prog="twscardio.bench", description="",
                          parser=parser, quick=QUICK)
    if args.workers is not None:
        if args.workers < 0:
            raise UserError(f"--workers must be >= 0, got {args.workers}")
        bc = replace(bc, workers=args.workers)
    set_seed(bc.train.seed)
    run_dir = make_run_dir(args.out, "twscardio", "bench")
    models = trained_models(bc)
    rep = BenchReport("twscardio", baseline="a", command=sys.argv)

    keep: dict = {}  # per-recording results of the checked settings, for the intervals
    with SubjectMap(bc.workers, models, jobs=bc.n_test_subjects) as pmap:
        log.info("test subjects on %d process(es)", pmap.workers)
        results, example = main_settings(rep, bc, pmap, keep)
        sweep = sweeps(rep, bc, pmap, results)
        out_of_family(rep, bc, pmap, results, keep)
        sqi, tails = sqi_rejection(bc, pmap, keep), stream_tails(bc, pmap, keep)
    rt = realtime(bc, models["d"])
    log.info("real time: %.0fx per window, %.0fx streaming", rt["rtf_window"], rt["rtf_stream"])

    checks(rep, results, rt)
    generalisation_checks(rep, results, sqi, tails)
    if bc.bootstrap_draws:
        ci = check_intervals(keep, rt, bc.n_test_subjects, bc.bootstrap_draws)
        rep.extra["check_intervals"] = [{"name": c.name, "measured": c.measured, **iv}
                                        for c, iv in zip(rep.checks, ci)]
        for c, iv in zip(rep.checks, ci):
            log.info("check %s: 95%% bootstrap interval %.4g - %.4g", c.name, iv["lo"], iv["hi"])
    extras(rep, models, rt, sqi, tails)
    headlines(rep, results, rt)
    notes(rep, bc, rt)
    _plot_sweeps(run_dir / "sweeps.png", {
        "packet loss (50 Hz, burst 3, rest)": (bc.loss_sweep, sweep["loss"], "ibi_mae_ms"),
        "input rate Hz (10% loss, rest)": (bc.fs_sweep, sweep["fs"], "ibi_mae_ms"),
        "motion level (25 Hz, 20% loss)": (bc.motion_sweep, sweep["motion"], "hr_mae")})
    _plot_overlay(run_dir / "overlay.png", example)
    rep.write(run_dir, plot_metrics=["hr_mae", "ibi_mae_ms"], config=bc)
    atomic_write_json(run_dir / "sweeps.json", {"loss": [bc.loss_sweep, sweep["loss"]],
                                                "fs": [bc.fs_sweep, sweep["fs"]],
                                                "motion": [bc.motion_sweep, sweep["motion"]]})
    return 0


if __name__ == "__main__":
    run(main)
