"""Benchmark: Ripple vs llama.cpp-style and LLM-in-a-flash loading, on identical oracle masks.

    python -m ripple.bench [--quick] [--out DIR] [--set key=value ...]

One process, one seed: train (or load the cached) small ReLU OPT, record activation masks on
calibration text (stdlib-py train split) and held-out text (stdlib-py and pydoc-topics test
splits), place neurons, replay every arm, then
- modelled UFS 4.0 I/O per token at the small model's true bundle size and with bundle bytes
  scaled to the paper's shapes (d_model 2048 / 4096, fp16), same activation pattern;
- real reads of a layout file on local disk (O_DIRECT when possible), queue depth 1 and 32;
- cross-corpus robustness (calibrate on stdlib-py, test on pydoc-topics vs calibrate there);
- a random-weights negative control and the offline placement time vs neurons per layer.
Writes bench.json (rows, checks, headline), bench.md, bench.png (I/O panels + placement time)
and layout-ripple.bin (the model's real layout file).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np

from ripple.config import RippleConfig
from ripple.data import synthetic_masks
from ripple.engine import ARMS
from ripple.layout import FlashLayout, write_layout
from ripple.pipeline import (
    QUICK,
    activated_fraction,
    bundle_settings,
    get_model,
    mask_sets,
    placements,
    replay_arms,
)
from ripple.placement import GreedyEdgePlacement
from ripple.storage import DirectReader
from shared.bench import BenchReport, save_figure
from shared.cli import parse_args, run
from shared.io import make_run_dir
from shared.runtime import set_seed

log = logging.getLogger("ripple.bench")

METRICS = ["ios_per_token", "mean_run", "max_run", "mean_read", "latency_ms", "lower_bound_ms",
           "eff_bw_gbs", "hit_rate", "read_amp"]
REAL_ARMS = ["llama.cpp", "llmflash", "ripple-place", "ripple+collapse", "ripple"]


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def real_reads(path: Path, lay_offsets: list[int], bundle_bytes: int, extents: list,
               page: int, qd: int) -> tuple[float, bool]:
    """Mean seconds per token to read the recorded extents at queue depth `qd`; O_DIRECT?"""
    with DirectReader(path, page=page, workers=max(qd, 1)) as r:
        per_tok = [sum(r.read(lay_offsets[li] + s * bundle_bytes, ln * bundle_bytes, qd)
                       for li, (s, ln) in enumerate(tok) if len(s)) for tok in extents]
        return float(np.mean(per_tok)), r.direct


def placement_scaling(sizes: list[int], top_k: int, seed: int) -> list[dict]:
    """Offline placement seconds vs neurons per layer, on simulated masks (1024 tokens)."""
    rows = []
    for n in sizes:
        m = synthetic_masks(n, 1024, seed=seed)[0]
        p = GreedyEdgePlacement(top_k)
        p.fit(m)
        rows.append({"neurons": n, "seconds": p.seconds, "links": len(p.links)})
        log.info("placement of %d neurons: %.1f s", n, p.seconds)
    return rows


def plot(rows: list[dict], scaling: list[dict], settings: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a.name for a in ARMS]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    for ax, metric, log_y in zip(axes[:3], ["ios_per_token", "latency_ms", "mean_run"],
                                 [True, True, False]):
        w = 0.8 / len(settings)
        for k, s in enumerate(settings):
            vals = [next((r[metric] for r in rows if r["arm"] == a and r["setting"] == s),
                         np.nan) for a in arms]
            ax.bar(np.arange(len(arms)) + k * w, vals, w, label=s)
            if metric == "latency_ms":
                lb = next(r["lower_bound_ms"] for r in rows if r["setting"] == s)
                ax.axhline(lb, color=f"C{k}", ls=":", lw=1)
        ax.set_xticks(np.arange(len(arms)) + 0.4 - w / 2, arms, rotation=30, fontsize=7)
        ax.set_title(metric + (" (dotted: lower bound)" if metric == "latency_ms" else ""))
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[3].plot([r["neurons"] for r in scaling], [r["seconds"] for r in scaling], marker="o")
    axes[3].axhline(120, color="r", ls="--", lw=1)
    axes[3].set_xlabel("neurons per layer")
    axes[3].set_title("offline placement seconds (2-min target dashed)")
    axes[3].grid(alpha=0.3)
    fig.suptitle("ripple: modelled UFS I/O per token (stdlib-py test masks, cache ratio 0.1)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def modelled_io(rep: BenchReport, test: np.ndarray, orders: dict, cfg: RippleConfig,
                settings: dict[str, int]) -> dict[str, dict]:
    """Replay every arm on the test masks at each bundle size; add a row per (arm, setting).

    Returns {setting: {arm: replay result}} (extents recorded for the real reads)."""
    results = {}
    for setting, bb in settings.items():
        results[setting] = replay_arms(test, orders, cfg, bb, record=cfg.real_read_tokens)
        for arm, r in results[setting].items():
            rep.add(arm, setting, bundle_bytes=bb, **{k: r[k] for k in METRICS})
    return results


def _ends(settings: dict[str, int]) -> tuple[str, str]:
    """(the small model's true bundle setting, the largest scaled one)."""
    return list(settings)[0], list(settings)[-1]


def layout_files(run_dir: Path, cfg: RippleConfig, w: list[dict], orders: dict, d_model: int,
                 settings: dict[str, int]) -> list[tuple[str, Path]]:
    """Write the true model's layout file (Ripple order, checked by reading neurons back) and one
    of random fp16 bytes at the largest scaled shape. Returns [(setting, layout path)]: the true
    file, then the scaled one."""
    true_s, big_s = _ends(settings)
    n, n_layers = w[0]["bundles"].shape[0], len(w)
    true_file = write_layout(run_dir / "layout-ripple.bin",
                             [x["bundles"] for x in w], orders["ripple"],
                             page=cfg.storage.page)
    lay = FlashLayout(true_file)
    probe = np.arange(0, n, max(1, n // 64))
    if not np.array_equal(lay.read_neurons(0, probe), w[0]["bundles"][probe]):
        raise RuntimeError(f"{true_file}: neurons read back differ from the model's weights")
    d_big = cfg.scaled_d_models[-1] if cfg.scaled_d_models else d_model
    rng = np.random.default_rng(cfg.seed)
    big_shape = (n, w[0]["bundles"].shape[1], d_big)
    big_file = write_layout(run_dir / "layout-scaled.bin",
                            [rng.standard_normal(big_shape, dtype=np.float32).astype(np.float16)
                             for _ in range(n_layers)],
                            [np.arange(n)] * n_layers, dtype="float16",
                            page=cfg.storage.page)
    return [(true_s, true_file), (big_s, big_file)]


def disk_reads(rep: BenchReport, cfg: RippleConfig, files: list[tuple[str, Path]],
               results: dict[str, dict]) -> bool:
    """Read each arm's recorded extents from the layout files at queue depth 1 and 32 (median
    of interleaved passes) into the rows' `disk_qd*_ms`; delete the scaled file afterwards.
    Returns whether every read used O_DIRECT."""
    direct = True
    for setting, path in files:
        lay_s = FlashLayout(path)
        for qd in (1, 32):
            passes = {arm: [] for arm in REAL_ARMS}
            for _ in range(cfg.real_read_repeats):  # arms interleaved: drift hits all alike
                for arm in REAL_ARMS:
                    sec, ok = real_reads(path, lay_s.data_offsets, lay_s.bundle_bytes,
                                         results[setting][arm]["extents"], cfg.storage.page, qd)
                    passes[arm].append(sec)
                    direct &= ok
            for r in rep.rows:
                if r["arm"] in passes and r["setting"] == setting:
                    r[f"disk_qd{qd}_ms"] = float(np.median(passes[r["arm"]]) * 1e3)
    files[-1][1].unlink()  # 100+ MB of random bytes: only its offsets mattered
    return direct


def cross_corpus(rep: BenchReport, cfg: RippleConfig, masks: dict[str, np.ndarray],
                 orders: dict, settings: dict[str, int]) -> dict[str, dict]:
    """Each other test corpus, placed by the calibration corpus vs by its own calibration split:
    adds LLMFlash and Ripple rows for both. Returns {"corpus | setting": {gain_cross,
    gain_native, loss}} (gains: LLMFlash / Ripple modelled latency)."""
    src = cfg.masks.calib_source
    cross = {}
    for other in [s for s in cfg.masks.test_sources if s != src]:
        native, _ = placements(masks[f"calib:{other}"], cfg.online.top_k)
        t_other = masks[f"test:{other}"]
        for setting in _ends(settings):
            bb = settings[setting]
            sel = [a for a in ARMS if a.name in ("llmflash", "ripple")]
            got_cross = replay_arms(t_other, orders, cfg, bb, sel)
            got_native = replay_arms(t_other, native, cfg, bb, sel)
            g_cross = _ratio(got_cross["llmflash"]["latency_ms"], got_cross["ripple"]["latency_ms"])
            g_native = _ratio(got_native["llmflash"]["latency_ms"],
                              got_native["ripple"]["latency_ms"])
            for name, got in ((f"{other} test, calib {src}", got_cross),
                              (f"{other} test, calib {other}", got_native)):
                for arm, r in got.items():
                    rep.add(arm, f"{setting} | {name}", bundle_bytes=bb,
                            **{k: r[k] for k in METRICS})
            cross[f"{other} | {setting}"] = {"gain_cross": g_cross, "gain_native": g_native,
                                             "loss": 1 - g_cross / g_native}
    return cross


def random_weights_control(cfg: RippleConfig, bundle_bytes: int) -> float:
    """Mean run length Ripple placement / identity on an untrained model's masks, which have
    no co-activation structure to exploit (so about 1)."""
    from ripple.models import build_model

    src = cfg.masks.calib_source
    rcfg = from_cfg_tokens(cfg, 2048, 1024)
    rmasks = mask_sets(build_model(cfg.model, cfg.seed), rcfg)
    rorders, _ = placements(rmasks[f"calib:{src}"], cfg.online.top_k)
    ctrl = replay_arms(rmasks[f"test:{src}"], rorders, cfg, bundle_bytes,
                       [a for a in ARMS if a.name in ("naive-runs", "ripple-place")])
    return _ratio(ctrl["ripple-place"]["mean_run"], ctrl["naive-runs"]["mean_run"])


def per_layer_figures(results: dict[str, dict], settings: dict[str, int]) -> dict[str, dict]:
    """{"arm | setting": {ios, latency_ms} per layer} at the true and the largest setting."""
    return {f"{arm} | {s}": {"ios": r["layer_ios_per_token"], "latency_ms": r["layer_latency_ms"]}
            for s in _ends(settings) for arm, r in results[s].items()}


def checks(rep: BenchReport, settings: dict[str, int], cross: dict[str, dict],
           scaling: list[dict]) -> None:
    """The package's targets, on the figures just measured."""
    true_s, big_s = _ends(settings)

    def v(arm, setting, metric):
        return rep.value(arm, metric, setting)

    rep.check("mean run length: ripple placement / naive placement",
              _ratio(v("ripple-place", true_s, "mean_run"), v("naive-runs", true_s, "mean_run")),
              ">=", 2.0)
    for s in (true_s, big_s):
        rep.check(f"I/O ops per token: LLMFlash / Ripple [{s}]",
                  _ratio(v("llmflash", s, "ios_per_token"), v("ripple", s, "ios_per_token")),
                  ">=", 1.5)
        rep.check(f"modelled latency: LLMFlash / Ripple [{s}]",
                  _ratio(v("llmflash", s, "latency_ms"), v("ripple", s, "latency_ms")), ">=", 2.0)
        rep.check(f"effective bandwidth: +collapse / placement only [{s}]",
                  _ratio(v("ripple+collapse", s, "eff_bw_gbs"), v("ripple-place", s, "eff_bw_gbs")),
                  ">=", 1.1)
    for key, c in cross.items():
        rep.check(f"cross-corpus loss of gain [{key}]", c["loss"], "<=", 0.10)
    n16 = [r["seconds"] for r in scaling if r["neurons"] == 16384]
    rep.check("placement seconds for 16K neurons/layer", n16[0] if n16 else None, "<=", 120)


def headlines(rep: BenchReport, settings: dict[str, int]) -> None:
    """The rows of results/SUMMARY.md: the paper's claims next to what was measured."""
    true_s, big_s = _ends(settings)

    def v(arm, setting, metric):
        return rep.value(arm, metric, setting)

    lat = {a: v(a, big_s, "latency_ms") for a in ("llama.cpp", "llmflash", "ripple")}
    rep.headline("I/O latency up to 5.93x lower than llama.cpp",
                 f"{lat['llama.cpp'] / lat['ripple']:.2f}x", "llama.cpp",
                 lat["llama.cpp"] / lat["ripple"], f"modelled UFS, {big_s}")
    rep.headline("I/O latency 2.23x (OPT avg) / up to 3.23x lower than LLM in a flash",
                 f"{lat['llmflash'] / lat['ripple']:.2f}x", "llmflash",
                 lat["llmflash"] / lat["ripple"], f"modelled UFS, {big_s}")
    run_gain = _ratio(v("ripple", true_s, "mean_run"), v("llmflash", true_s, "mean_run"))
    rep.headline("mean contiguous read +213% over LLM in a flash (OPT)",
                 f"{(run_gain - 1) * 100:+.0f}%", "llmflash", run_gain, "stdlib-py test masks")
    bw_gain = _ratio(v("ripple+collapse", big_s, "eff_bw_gbs"),
                     v("ripple-place", big_s, "eff_bw_gbs"))
    rep.headline("access collapse: 1.21x effective bandwidth (OPT-6.7B)", f"{bw_gain:.2f}x",
                 "ripple-place", bw_gain, f"modelled UFS, {big_s}")


def notes(rep: BenchReport, cfg: RippleConfig, settings: dict[str, int],
          frac: dict[str, np.ndarray], per_layer: dict[str, dict], direct: bool,
          control_gain: float, place_s: float, shape: tuple[int, ...]) -> None:
    """Activated fractions, what the settings and disk columns mean, the control, placement
    time, cache budget and the per-layer latency ratios; `shape` is the masks' (L, T, n)."""
    for k, f in frac.items():
        rep.notes.append(f"activated fraction per layer, {k}: "
                         + ", ".join(f"{x:.3f}" for x in f))
    true_s, big_s = _ends(settings)
    rep.notes += [
        f"settings: '{true_s}' is the small model's real bundle; 'scaled' settings keep its "
        "activation pattern and scale the bundle bytes to the paper's shapes (fp16)",
        "disk_qd*_ms: real reads of the layout file on this machine's local disk "
        f"({'O_DIRECT' if direct else 'BUFFERED fallback: O_DIRECT unsupported'}), not UFS; "
        "extents rounded out to 4 KB pages; the scaled file holds random fp16 bytes; median of "
        f"{cfg.real_read_repeats} interleaved passes",
        f"random-weights control: mean run ripple/identity = {control_gain:.2f}x "
        "(no co-activation structure to exploit)",
        f"offline placement of the model ({shape[0]} layers x {shape[2]}): {place_s:.1f} s",
        f"cache ratio {cfg.online.cache_ratio} for every arm (S3-FIFO; LLMFlash: windowing "
        f"k={cfg.online.window} capped at the same budget)",
    ]
    for s in (true_s, big_s):
        a, b = per_layer[f"llmflash | {s}"], per_layer[f"ripple | {s}"]
        rep.notes.append(
            f"per layer [{s}], LLMFlash/Ripple modelled latency: "
            + ", ".join(f"{x / y:.2f}x" for x, y in zip(a["latency_ms"], b["latency_ms"]))
            + f"; layers 1.. only: {sum(a['latency_ms'][1:]) / sum(b['latency_ms'][1:]):.2f}x")


def main(argv=None) -> int:
    args, cfg = parse_args(
        argv, RippleConfig, prog="ripple.bench", default_config="configs/ripple/bench.yaml",
        quick=QUICK,
        description="Ripple (neuron co-activation placement + access collapsing + linking-"
                    "aligned cache) vs llama.cpp-style and LLM-in-a-flash loading, on the same "
                    "activation masks of a trained ReLU OPT. Modelled UFS 4.0 and real local-"
                    "disk O_DIRECT reads; writes bench.json/md/png to the run dir.")
    set_seed(cfg.seed)
    run_dir = make_run_dir(args.out, "ripple", "bench")
    t_start = time.perf_counter()
    rep = BenchReport("ripple", baseline="llmflash", command=sys.argv)

    model = get_model(cfg)
    masks = mask_sets(model, cfg)
    src = cfg.masks.calib_source
    calib = masks[f"calib:{src}"]
    d_model, n = model.config.hidden_size, calib.shape[2]
    frac = {k: activated_fraction(v) for k, v in masks.items()}
    orders, place_s = placements(calib, cfg.online.top_k)
    log.info("placed %d layers x %d neurons in %.1f s", calib.shape[0], n, place_s)
    from ripple.models import ffn_weights

    w = ffn_weights(model)
    settings = bundle_settings(d_model, cfg, parts=w[0]["bundles"].shape[1])
    results = modelled_io(rep, masks[f"test:{src}"], orders, cfg, settings)
    direct = disk_reads(rep, cfg, layout_files(run_dir, cfg, w, orders, d_model, settings),
                        results)
    cross = cross_corpus(rep, cfg, masks, orders, settings)
    control_gain = random_weights_control(cfg, settings[_ends(settings)[0]])
    scaling = placement_scaling(cfg.placement_sizes, cfg.online.top_k, cfg.seed)

    checks(rep, settings, cross, scaling)
    headlines(rep, settings)
    per_layer = per_layer_figures(results, settings)
    notes(rep, cfg, settings, frac, per_layer, direct=direct, control_gain=control_gain,
          place_s=place_s, shape=calib.shape)
    rep.extra.update({"per_layer": per_layer, "activated_fraction": frac, "cross_corpus": cross,
                      "random_weights_control_run_gain": control_gain,
                      "placement_scaling": scaling, "model_placement_seconds": place_s,
                      "o_direct": direct, "model": {"d_model": d_model, "neurons": n},
                      "wall_seconds": time.perf_counter() - t_start})
    rep.write(run_dir, config=cfg)
    plot(rep.rows, scaling, list(settings), run_dir / "bench.png")
    return 0


def from_cfg_tokens(cfg: RippleConfig, calib: int, test: int) -> RippleConfig:
    """A copy of `cfg` recording fewer mask tokens (for the control)."""
    from shared.config import apply_overrides, from_dict, to_dict

    return from_dict(RippleConfig, apply_overrides(
        to_dict(cfg), [f"masks.calib_tokens={calib}", f"masks.test_tokens={test}",
                       f"masks.test_sources=[{cfg.masks.calib_source}]"]))


if __name__ == "__main__":
    run(main)
