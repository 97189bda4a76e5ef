"""The GPU memory/speed benchmark of LeMo against LoRA, LongLoRA and chunked loss
(paper §6.2: peak memory, step time and longest sequence, Fig. 12).

    python -m lemo.gpu_bench --config configs/lemo/gpu_llama.yaml --out results/lemo_gpu

One process, one model (random weights: with a fixed keep ratio, memory and time do not depend
on weight values), all arms, each sequence length. Arms switch in place on the same peft model
through `lemo.configure_lemo` (the public API of `lemo.patch`):

| arm             | attention                       | MLP          | loss          | recompute |
|-----------------|---------------------------------|--------------|---------------|-----------|
| lora            | dense (HF sdpa)                 | dense        | HF full logits| no        |
| lora_segment    | dense                           | dense        | segmented     | no        |
| lora_ckpt       | dense                           | dense        | HF full logits| yes       |
| longlora_s2     | S2-Attn, groups of s/4          | dense        | HF full logits| no        |
| lemo_attn       | token elimination (`keep_ratio`)| dense        | segmented     | no        |
| lemo_full       | token elimination               | pruned saves | segmented     | no        |
| lemo_full_ckpt  | token elimination               | as lemo_full | segmented     | yes       |

(pruned saves: `mlp_prune_ratio` of the MLP channels are not saved for backward.) The LeMo arms'
selection and pruning are the library's default (`configs/lemo/gpu_llama.yaml`: the unbiased
policy at keep 0.6, 50% MLP pruning) or the paper's AE setting
(`configs/lemo/gpu_llama_paper.yaml`: causal column sum, keep 0.4, 80% pruning).

(`lemo_full_exact`, optional: lemo_full scored by the exact block-pooling kernel instead of the
pattern predictors that the paper runs at training time.)

Per arm × length: peak memory (`max_memory_allocated` over one step), activation memory (peak −
memory before the forward), step time (CUDA events, median of `repeats` steps after `warmup`),
effective TFLOP/s (the dense LoRA model's FLOPs for that length over the step time, the same
numerator for every arm, so it ranks speed), and the longest trainable length (doubling, then
bisection to `search_step`, up to OOM). Also the kernels' micro-benchmarks vs their fallbacks
(`lemo.kernels.microbench`) and CUDA-kernel time profiles of chosen arm@length steps (which
kernel dominates, and how busy the GPU is). Writes bench.json / bench.md / bench.png and
details.md. The memory step also counts the bytes its forward saves for backward (`saved_gib`),
so peak − before − saved is what transient buffers add at the peak.

On a CPU (`--device cpu`, tests) the same code runs a tiny model: times use the host clock and
memory fields are absent.
"""

from __future__ import annotations

import gc
import logging
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch

from shared.bench import BenchReport, markdown_table
from shared.cli import build_parser, parse_args, run
from shared.errors import ConfigError
from shared.io import atomic_write_text, make_run_dir
from shared.memory import SavedTensorMeter
from shared.runtime import pick_device, set_seed

log = logging.getLogger("lemo.gpu_bench")

ARMS = ("lora", "lora_segment", "lora_ckpt", "longlora_s2", "lemo_attn", "lemo_full",
        "lemo_full_ckpt", "lemo_full_exact")


@dataclass
class GpuModelConfig:
    """The benchmarked LM's shape (defaults: Llama-2-shaped, as in the paper's §6.2)."""

    arch: Literal["llama", "opt"] = "llama"
    hidden_size: int = 2048
    num_layers: int = 16
    num_heads: int = 32
    num_kv_heads: int = 4  # GQA 32/4 (ignored by OPT)
    intermediate_size: int = 5632
    vocab_size: int = 32000
    dtype: Literal["bfloat16", "float32"] = "bfloat16"

    def validate(self) -> None:
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must divide by num_heads and num_heads by num_kv_heads")


@dataclass
class GpuBenchConfig:
    """`python -m lemo.gpu_bench`: every arm on one model, each sequence length."""

    seed: int = 0
    device: str = "auto"
    model: GpuModelConfig = field(default_factory=GpuModelConfig)
    seq_lens: list[int] = field(default_factory=lambda: [4096, 8192, 16384, 32768])
    arms: list[str] = field(default_factory=lambda: list(ARMS[:7]))
    warmup: int = 3  # untimed steps per arm × length (also Triton autotuning)
    repeats: int = 10  # timed steps; the median is reported
    # LeMo arms' selection: the library's default (`LemoConfig`: the unbiased policy at keep
    # 0.6, 50% MLP pruning); configs/lemo/gpu_llama_paper.yaml is the paper's AE setting
    keep_ratio: float = 0.6  # LeMo: fraction of key blocks kept (AE --thresh 0.4)
    score_reduce: Literal["sum", "mean"] = "mean"  # key-block score (paper: "sum")
    causal_scores: bool = True
    sink_blocks: int = 1  # always-kept first blocks (paper: 0)
    local_blocks: int = 1  # always-kept last blocks (paper: 0)
    dense_first: float = 0.4375  # leading layers kept dense (+ the last): 7/16 makes half of
    # the 16 layers eliminate, the AE's share for Llama (layers 15-30 of 32)
    mlp_prune_ratio: float = 0.5  # LeMo full: MLP channels not saved for backward (AE: 0.8)
    segment: int = 2048  # tokens per lm_head + CE segment
    scorer: Literal["predictor", "exact"] = "predictor"  # LeMo arms' block scorer
    cuda_graph_max_tokens: int = 0  # LeMo arms: CUDA-graph eliminating attention up to this
    predictor_hidden: int = 88  # ~64.6% of 128 units remain after elastic sizing (paper Tab. 8),
    # rounded up to a multiple of 8 for tensor-core GEMM shapes
    lora_r: int = 8
    lora_alpha: int = 16
    search_arms: list[str] = field(default_factory=lambda: ["lora", "lemo_full"])
    search_step: int = 4096  # longest-length search granularity
    search_max: int = 262144
    micro: bool = True  # kernel micro-benchmarks
    micro_seq_lens: list[int] = field(default_factory=lambda: [4096, 16384])
    # "armA/armB@length": step times of the two arms timed in alternation, `paired_rounds` rounds
    # of (warm-up + `repeats` steps) each; the targets' speed ratios use the median of the
    # per-round ratios, which host-speed drift during the run cannot bias (the 4K step is
    # host-bound; results/lemo_gpu/README.md)
    paired: list[str] = field(default_factory=list)
    paired_rounds: int = 5
    profile: list[str] = field(default_factory=list)  # "arm@length": CUDA kernel-time profiles
    peak_traces: list[str] = field(default_factory=list)  # "arm@length": what is live at the peak
    time_budget_s: float = 520.0  # stop starting new work after this (the device call's limit)

    def validate(self) -> None:
        bad = [a for a in [*self.arms, *self.search_arms] if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; choose from {list(ARMS)}")
        if "lora" not in self.arms:
            raise ValueError("arms must include the baseline 'lora'")
        if not self.seq_lens or any(s <= 0 or s % 128 for s in self.seq_lens):
            raise ValueError(f"seq_lens must be positive multiples of 128, got {self.seq_lens}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")
        if self.search_step % 128:
            raise ValueError("search_step must be a multiple of 128")
        for spec in [*self.profile, *self.peak_traces]:
            arm, _, length = spec.partition("@")
            if arm not in ARMS or not length.isdigit():
                raise ValueError(f"profile entry '{spec}' is not 'arm@length' with a known arm")
        for spec in self.paired:
            pair, _, length = spec.partition("@")
            arms = pair.split("/")
            if len(arms) != 2 or any(a not in ARMS for a in arms) or not length.isdigit():
                raise ValueError(f"paired entry '{spec}' is not 'armA/armB@length' with known arms")
        if self.paired_rounds < 1:
            raise ValueError("paired_rounds must be >= 1")
        self.validate_lemo()

    def validate_lemo(self) -> None:
        """The LeMo arms' selection and pruning fields (also `lemo.dist_bench`'s)."""
        if not 0.0 < self.keep_ratio <= 1.0 or not 0.0 <= self.mlp_prune_ratio < 1.0:
            raise ValueError("keep_ratio must be in (0, 1] and mlp_prune_ratio in [0, 1)")
        if self.sink_blocks < 0 or self.local_blocks < 0:
            raise ValueError("sink_blocks and local_blocks must be >= 0")


# --------------------------------------------------------------------------- model and arms


def build_model(mc: GpuModelConfig, max_len: int, device: str, lora_r: int, lora_alpha: int):
    """Random-weight LM of the configured shape + peft LoRA (q/k/v/o) + LeMo layers (off)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, OPTConfig

    from lemo.config import LemoConfig, LoraConfig
    from lemo.models import add_lora
    from lemo.patch import apply_lemo

    dtype = getattr(torch, mc.dtype)
    if mc.arch == "llama":
        hf = LlamaConfig(vocab_size=mc.vocab_size, hidden_size=mc.hidden_size,
                         intermediate_size=mc.intermediate_size,
                         num_hidden_layers=mc.num_layers, num_attention_heads=mc.num_heads,
                         num_key_value_heads=mc.num_kv_heads, max_position_embeddings=max_len,
                         tie_word_embeddings=False)
    else:
        hf = OPTConfig(vocab_size=mc.vocab_size, hidden_size=mc.hidden_size,
                       ffn_dim=mc.intermediate_size, num_hidden_layers=mc.num_layers,
                       num_attention_heads=mc.num_heads, max_position_embeddings=max_len,
                       word_embed_proj_dim=mc.hidden_size, do_layer_norm_before=True,
                       dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(hf, attn_implementation="sdpa", dtype=dtype)
    model.config.use_cache = False
    model = add_lora(model, LoraConfig(r=lora_r, alpha=lora_alpha))
    for p in model.parameters():  # lora_B starts at 0; any values time the same
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    apply_lemo(model, LemoConfig(enabled=False))
    return model.train()


def policy(cfg: GpuBenchConfig) -> dict:
    """The LeMo arms' selection-policy fields of `LemoConfig`."""
    return dict(selection="topk", score_reduce=cfg.score_reduce, causal_scores=cfg.causal_scores,
                sink_blocks=cfg.sink_blocks, local_blocks=cfg.local_blocks)


def arm_setup(arm: str, cfg: GpuBenchConfig) -> tuple[object, int, bool]:
    """arm -> (LemoConfig, loss segment (0: HF full-logits loss), gradient checkpointing)."""
    from lemo.config import LemoConfig

    lemo = dict(enabled=True, keep_ratio=cfg.keep_ratio, scorer=cfg.scorer,
                segment_size=cfg.segment, dense_first=cfg.dense_first,
                cuda_graph_max_tokens=cfg.cuda_graph_max_tokens, **policy(cfg))
    table = {
        "lora": (dict(enabled=False, segment_size=0), False),
        "lora_segment": (dict(enabled=False, segment_size=cfg.segment), False),
        "lora_ckpt": (dict(enabled=False, segment_size=0), True),
        "longlora_s2": (dict(enabled=True, attention="s2", s2_groups=4, segment_size=0,
                             mlp_prune_ratio=0.0), False),
        "lemo_attn": (dict(lemo, mlp_prune_ratio=0.0), False),
        "lemo_full": (dict(lemo, mlp_prune_ratio=cfg.mlp_prune_ratio), False),
        "lemo_full_ckpt": (dict(lemo, mlp_prune_ratio=cfg.mlp_prune_ratio), True),
        "lemo_full_exact": (dict(lemo, mlp_prune_ratio=cfg.mlp_prune_ratio, scorer="exact"),
                            False),
    }
    kw, ckpt = table[arm]
    return LemoConfig(**kw), kw["segment_size"], ckpt


def attach_predictors(model, cfg: GpuBenchConfig, device: str) -> int:
    """A `PatternPredictor` (random weights; its cost does not depend on them) per eliminating
    layer; returns their parameter count."""
    from lemo.config import LemoConfig
    from lemo.patch import configure_lemo, lemo_layers
    from lemo.predictor import PatternPredictor

    configure_lemo(model, LemoConfig(enabled=True, keep_ratio=cfg.keep_ratio,
                                     dense_first=cfg.dense_first, **policy(cfg)))
    mc = cfg.model
    n = 0
    for layer in lemo_layers(model):
        if layer.eliminating:
            pred = PatternPredictor(mc.hidden_size, mc.num_heads, 64, cfg.predictor_hidden,
                                    128).to(device).eval()
            pred.requires_grad_(False)
            layer.set_predictor(pred)
            n += pred.n_params()
    return n


def dense_flops(mc: GpuModelConfig, s: int) -> float:
    """FLOPs of one dense LoRA training step at length s (frozen base weights, batch 1):
    linear layers forward + input-gradient backward (2 × 2·s·params), causal attention forward
    (2·s²·D per layer) and backward (2× forward); LoRA's rank-8 terms are negligible."""
    d, hd = mc.hidden_size, mc.hidden_size // mc.num_heads
    kv = (mc.num_kv_heads if mc.arch == "llama" else mc.num_heads) * hd
    mlp = (3 if mc.arch == "llama" else 2) * d * mc.intermediate_size
    linear = mc.num_layers * (2 * d * d + 2 * d * kv + mlp) + mc.vocab_size * d
    attn = mc.num_layers * 2.0 * s * s * d
    return 2 * (2.0 * s * linear) + 3 * attn


# --------------------------------------------------------------------------- measurement


def _site(frames: list[dict]) -> str:
    """The first two Python frames outside torch itself: the model line that allocated."""
    own = [f for f in frames if "/torch/" not in f.get("filename", "")][:2]
    return " < ".join(f"{'/'.join(f['filename'].split('/')[-2:])}:{f['line']} {f['name']}"
                      for f in own) or "torch internals"


def analyse_trace(trace: list[dict], top: int = 12) -> dict:
    """Allocator trace (`torch.cuda.memory._snapshot()['device_traces'][0]`) -> the peak of bytes
    allocated during the trace, the line whose allocation reached it, and the live bytes at that
    moment grouped by allocating line (largest first)."""
    cur = peak = 0
    peak_i = -1
    sizes: dict[int, int] = {}
    for i, e in enumerate(trace):
        if e["action"] == "alloc":
            sizes[e["addr"]] = e["size"]
            cur += e["size"]
            if cur > peak:
                peak, peak_i = cur, i
        elif e["action"] == "free_requested" and e["addr"] in sizes:
            cur -= sizes.pop(e["addr"])
    live: dict[int, tuple[int, str]] = {}
    for e in trace[:peak_i + 1]:
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], _site(e.get("frames", [])))
        elif e["action"] == "free_requested":
            live.pop(e["addr"], None)
    groups: dict[str, list[int]] = {}
    for size, site in live.values():
        g = groups.setdefault(site, [0, 0])
        g[0] += size
        g[1] += 1
    rows = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    return {"peak_gib_in_step": peak / 2**30,
            "peak_site": _site(trace[peak_i].get("frames", [])) if peak_i >= 0 else None,
            "live_at_peak": [{"site": k[:110], "gib": v[0] / 2**30, "tensors": v[1]}
                             for k, v in rows]}


class Runner:
    """Runs training steps of one arm on the shared model and measures them."""

    def __init__(self, model, cfg: GpuBenchConfig, device: str):
        self.model, self.cfg, self.device = model, cfg, device
        self.cuda = device.startswith("cuda")
        self.params = [p for p in model.parameters() if p.requires_grad]

    def configure(self, arm: str) -> int:
        from lemo.models import set_checkpointing
        from lemo.patch import configure_lemo

        lemo_cfg, segment, ckpt = arm_setup(arm, self.cfg)
        configure_lemo(self.model, lemo_cfg)  # drops the previous arm's CUDA graphs
        self.free()
        set_checkpointing(self.model, ckpt)
        self.model.train()
        self.opt = torch.optim.AdamW(self.params, lr=2e-5, betas=(0.9, 0.95), weight_decay=0.0)
        return segment

    def step(self, ids: torch.Tensor, segment: int, meter: SavedTensorMeter | None = None
             ) -> None:
        """Forward, backward and AdamW update; `meter` counts what the forward saves."""
        from lemo.loss import causal_lm_loss

        if meter is not None:
            with meter:  # exits before backward, so it holds nothing longer than autograd does
                loss = causal_lm_loss(self.model, ids, segment=segment)
        else:
            loss = causal_lm_loss(self.model, ids, segment=segment)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def free(self) -> None:
        self.opt = None
        for p in self.params:
            p.grad = None
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def tokens(self, s: int) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(self.cfg.seed + s)
        return torch.randint(0, self.cfg.model.vocab_size, (1, s), device=self.device,
                             generator=g)

    def fits(self, arm: str, s: int) -> bool:
        """One step at length s runs without running out of device memory."""
        ok = True
        try:
            segment = self.configure(arm)
            self.step(self.tokens(s), segment)
            self.sync()
        except torch.OutOfMemoryError:
            ok = False
        self.free()
        return ok

    def measure(self, arm: str, s: int) -> dict:
        """Peak/activation memory of one step and the median time of `repeats` steps."""
        cfg = self.cfg
        row: dict = {}
        oom = False
        try:
            segment = self.configure(arm)
            ids = self.tokens(s)
            for _ in range(cfg.warmup):
                self.step(ids, segment)
            self.sync()
            if self.cuda:
                meter = SavedTensorMeter(exclude=list(self.model.parameters()))
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                self.step(ids, segment, meter)
                self.sync()
                peak = torch.cuda.max_memory_allocated()
                row["peak_gib"] = peak / 2**30
                row["act_gib"] = (peak - before) / 2**30
                row["saved_gib"] = meter.bytes / 2**30  # saved for backward by the forward
            row["step_s"] = self._time(ids, segment)
        except torch.OutOfMemoryError:
            oom = True
        self.free()
        if oom:
            return {"status": "oom"}
        row["status"] = "ok"
        row["tflops"] = dense_flops(cfg.model, s) / row["step_s"] / 1e12
        return row

    def _time(self, ids: torch.Tensor, segment: int) -> float:
        times = []
        for _ in range(self.cfg.repeats):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                self.step(ids, segment)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                self.step(ids, segment)
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def paired(self, arm_a: str, arm_b: str, s: int, rounds: int) -> dict:
        """Median step time of arm_a and arm_b in alternating rounds (each: configure, warm-up,
        `repeats` timed steps); the ratio b / a per round and its median."""
        ids = self.tokens(s)
        times: dict[str, list[float]] = {arm_a: [], arm_b: []}
        for _ in range(rounds):
            for arm in (arm_a, arm_b):
                segment = self.configure(arm)
                for _ in range(self.cfg.warmup):
                    self.step(ids, segment)
                self.sync()
                times[arm].append(self._time(ids, segment))
                self.free()
        ratios = [b / a for a, b in zip(times[arm_a], times[arm_b])]
        return {"a": arm_a, "b": arm_b, "seq_len": s, "times_s": times, "ratios_b_over_a": ratios,
                "median_ratio": statistics.median(ratios),
                "median_s": {k: statistics.median(v) for k, v in times.items()}}

    def longest(self, arm: str, start_ok: int, start_bad: int | None, deadline: float) -> dict:
        """Largest trainable length: double from a known-good length until OOM, then bisect to
        `search_step`. Returns {longest, upper (first failing length or None), complete}."""
        step, cap = self.cfg.search_step, self.cfg.search_max
        lo, hi = start_ok, start_bad
        while hi is None and lo < cap:
            if time.monotonic() > deadline:
                return {"longest": lo, "upper": None, "complete": False}
            s = min(cap, lo * 2)
            if self.fits(arm, s):
                lo = s
            else:
                hi = s
        while hi is not None and hi - lo > step:
            if time.monotonic() > deadline:
                return {"longest": lo, "upper": hi, "complete": False}
            s = (lo + hi) // 2 // step * step
            if s <= lo:
                break
            if self.fits(arm, s):
                lo = s
            else:
                hi = s
        return {"longest": lo, "upper": hi, "complete": True}

    def peak_trace(self, arm: str, s: int, top: int = 12) -> dict:
        """Record the CUDA allocator's history over one step and report what is live at its
        peak, grouped by the Python line that allocated it (`analyse_trace`)."""
        from torch.cuda import memory as cm

        segment = self.configure(arm)
        ids = self.tokens(s)
        self.step(ids, segment)
        self.sync()
        cm._record_memory_history(max_entries=2_000_000, stacks="python")
        try:
            self.step(ids, segment)
            self.sync()
            trace = cm._snapshot()["device_traces"][0]
        finally:
            cm._record_memory_history(enabled=None)
        self.free()
        return analyse_trace(trace, top)

    def profile(self, arm: str, s: int, top: int = 12) -> dict:
        """CUDA time by kernel over one step (torch.profiler), the `top` largest, and the sum of
        kernel times against the step's wall time (busy < 1: the GPU waits on the host)."""
        from torch.profiler import ProfilerActivity, profile

        segment = self.configure(arm)
        ids = self.tokens(s)
        self.step(ids, segment)
        self.sync()
        act = ProfilerActivity.CUDA if self.cuda else ProfilerActivity.CPU
        key = "device_time_total" if self.cuda else "self_cpu_time_total"  # CPU: op times
        with profile(activities=[act]) as prof:
            t0 = time.perf_counter()
            self.step(ids, segment)
            self.sync()
            wall = time.perf_counter() - t0
        self.free()
        events = prof.key_averages()
        total = sum(getattr(e, key) for e in events) or 1.0
        rows = sorted(events, key=lambda e: -getattr(e, key))[:top]
        return {"wall_ms": wall * 1e3, "kernels_ms": total / 1e3,
                "busy": total / 1e3 / (wall * 1e3), "launches": sum(e.count for e in events),
                "top": [{"kernel": e.key[:90], "cuda_ms": getattr(e, key) / 1e3,
                         "share": getattr(e, key) / total, "calls": e.count} for e in rows]}


# --------------------------------------------------------------------------- the recipe


def _setting(s: int) -> str:
    return f"{s // 1024}K" if s % 1024 == 0 else str(s)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def evaluate_targets(rep: BenchReport, cfg: GpuBenchConfig, longest: dict) -> None:
    """The package's GPU targets (memory, step time, longest sequence) on the figures measured."""
    def v(arm, metric, s):
        return rep.value(arm, metric, _setting(s))

    for s in (8192, 16384):
        if s in cfg.seq_lens:
            r = _ratio(v("lora", "peak_gib", s), v("lemo_full", "peak_gib", s))
            rep.check(f"peak memory LoRA / LeMo full @{_setting(s)}", r, ">=", 1.93)
    if "lora" in longest and "lemo_full" in longest:
        rep.check("longest trainable length LeMo full / LoRA",
                  _ratio(longest["lemo_full"]["longest"], longest["lora"]["longest"]), ">=", 2.0)
    pairs = {(p["a"], p["b"], p["seq_len"]): p["median_ratio"] for p in
             rep.extra.get("paired", [])}

    def speed(a: str, b: str, s: int) -> float | None:
        """Step time b / a: the paired measurement's median ratio when there is one."""
        if (a, b, s) in pairs:
            return pairs[(a, b, s)]
        if (b, a, s) in pairs:
            return 1.0 / pairs[(b, a, s)]
        return _ratio(v(b, "step_s", s), v(a, "step_s", s))

    if 32768 in cfg.seq_lens:
        rep.check("step time LoRA+ckpt / LeMo full+ckpt @32K",
                  speed("lemo_full_ckpt", "lora_ckpt", 32768), ">=", 1.36)
    if 4096 in cfg.seq_lens:
        rep.check("step time LeMo full / LoRA @4K (no ckpt)", speed("lora", "lemo_full", 4096),
                  "<=", 1.10)


QUICK = {"seq_lens": [4096], "repeats": 3, "warmup": 2, "search_arms": [],
         "micro_seq_lens": [4096], "profile": []}


def _parser():
    """The command line: the common flags, with this bench's description and examples."""
    return build_parser(
        "lemo.gpu_bench",
        "LeMo vs LoRA / LongLoRA / chunked loss on a GPU: peak and activation memory, step "
        "time, TFLOP/s and longest trainable length for every arm and sequence length, plus "
        "the Triton kernels' micro-benchmarks. --quick: 4K only, 3 timed steps, no search.",
        default_config="configs/lemo/gpu_llama.yaml",
        epilog="arms: " + ", ".join(ARMS) + "\n\nexamples:\n"
               "  python -m lemo.gpu_bench --out results/lemo_gpu\n"
               "  python -m lemo.gpu_bench --config configs/lemo/gpu_opt.yaml\n"
               "  python -m lemo.gpu_bench --set 'seq_lens=[8192]' --set 'arms=[lora,lemo_full]' "
               "--set 'peak_traces=[lemo_full@8192]' --set micro=false --set 'search_arms=[]'")


def microbenchmarks(rep: BenchReport, cfg: GpuBenchConfig) -> None:
    """The kernels vs their PyTorch fallbacks (into `rep.extra["microbench"]`) and the check
    that they agree."""
    from lemo.kernels.microbench import run_microbench

    log.info("kernel micro-benchmarks at %s", cfg.micro_seq_lens)
    micro = run_microbench(tuple(cfg.micro_seq_lens), keep=cfg.keep_ratio, seed=cfg.seed)
    rep.extra["microbench"] = micro
    worst = max(r["max_rel_err"] for r in micro)
    rep.check("kernels equal fallbacks (max relative error, bf16)", worst, "<=", 1e-2)
    for r in micro:
        log.info("  %-22s %-4s triton %.3f ms  torch %.3f ms  (%.2fx)  err %.1e",
                 r["kernel"], r["setting"], r["triton_ms"], r["torch_ms"], r["speedup"],
                 r["max_rel_err"])


def measure_lengths(rep: BenchReport, runner: Runner, lengths: list[int], deadline: float,
                    ok_len: dict[str, int], bad_len: dict[str, int],
                    save: Callable[[], None]) -> None:
    """A row per arm at each length (or `status` oom / skipped); updates each arm's longest
    length that fit (`ok_len`) and shortest that did not (`bad_len`); saves after each length."""
    for s in lengths:
        for arm in runner.cfg.arms:
            if bad_len.get(arm, s + 1) <= s:  # already out of memory at a shorter length
                rep.add(arm, _setting(s), status="oom")
                continue
            if time.monotonic() > deadline:
                rep.add(arm, _setting(s), status="skipped (time budget)")
                continue
            row = runner.measure(arm, s)
            rep.add(arm, _setting(s), seq_len=s, **row)
            if row["status"] == "ok":
                ok_len[arm] = max(s, ok_len.get(arm, 0))
                log.info("%-15s %6d  peak %6.2f GiB  act %6.2f GiB  step %.3f s  %.0f TFLOP/s",
                         arm, s, row.get("peak_gib", float("nan")),
                         row.get("act_gib", float("nan")), row["step_s"], row["tflops"])
            else:
                bad_len[arm] = min(s, bad_len.get(arm, s))
                log.info("%-15s %6d  out of memory", arm, s)
        save()


def search_longest(rep: BenchReport, runner: Runner, deadline: float, ok_len: dict[str, int],
                   bad_len: dict[str, int], longest: dict[str, dict],
                   save: Callable[[], None]) -> None:
    """The longest trainable length of each search arm that ran, from its known good and bad
    lengths, into `longest` (and `rep.extra["longest"]`); saves after each arm."""
    for arm in runner.cfg.search_arms:
        if arm not in ok_len or time.monotonic() > deadline:
            continue
        res = runner.longest(arm, ok_len[arm], bad_len.get(arm), deadline)
        longest[arm] = res
        log.info("longest trainable %-15s %s", arm, res)
        rep.extra["longest"] = longest
        save()


def lengths_then_longest(rep: BenchReport, runner: Runner, deadline: float,
                         save: Callable[[], None]) -> dict[str, dict]:
    """Every arm at every length, and the longest-length search. Lengths whose LeMo arms run
    CUDA graphs go last, after the search: whatever the graphs leave allocated in this process
    cannot then raise other rows' peaks. Returns {arm: runner.longest(...)}."""
    cfg = runner.cfg
    ok_len: dict[str, int] = {}
    bad_len: dict[str, int] = {}
    longest: dict[str, dict] = {}
    graphed = [s for s in cfg.seq_lens if s <= cfg.cuda_graph_max_tokens]
    eager = [s for s in cfg.seq_lens if s not in graphed]
    measure_lengths(rep, runner, eager, deadline, ok_len, bad_len, save)
    if eager:
        search_longest(rep, runner, deadline, ok_len, bad_len, longest, save)
    measure_lengths(rep, runner, graphed, deadline, ok_len, bad_len, save)
    if not eager:
        search_longest(rep, runner, deadline, ok_len, bad_len, longest, save)
    return longest


def paired_timings(rep: BenchReport, runner: Runner, deadline: float,
                   save: Callable[[], None]) -> None:
    """Each `a/b@length` of `cfg.paired` timed in alternating rounds, into
    `rep.extra["paired"]`; saves after each pair."""
    pairs = []
    for spec in runner.cfg.paired:
        pair, _, length = spec.partition("@")
        if time.monotonic() > deadline:
            break
        res = runner.paired(*pair.split("/"), int(length), runner.cfg.paired_rounds)
        pairs.append(res)
        log.info("paired %s: %s / %s per round %s (median %.3f)", spec, res["b"], res["a"],
                 [round(r, 3) for r in res["ratios_b_over_a"]], res["median_ratio"])
        rep.extra["paired"] = pairs
        save()


def profiles(rep: BenchReport, runner: Runner, deadline: float) -> None:
    """Kernel-time profiles of each `arm@length` of `cfg.profile`, into
    `rep.extra["profile"]` (an out-of-memory step is recorded as an error)."""
    prof = []
    for spec in runner.cfg.profile:
        arm, _, length = spec.partition("@")
        if time.monotonic() > deadline:
            break
        try:
            res = runner.profile(arm, int(length))
        except torch.OutOfMemoryError:
            runner.free()
            res = {"error": "out of memory"}
        prof.append({"arm": arm, "seq_len": int(length), **res})
        log.info("profile %s: %s", spec, {k: v for k, v in res.items() if k != "top"})
    if prof:
        rep.extra["profile"] = prof


def peak_traces(rep: BenchReport, runner: Runner, deadline: float) -> None:
    """What is live at the memory peak of each `arm@length` of `cfg.peak_traces` (CUDA only),
    into `rep.extra["peak_traces"]`."""
    traces = []
    for spec in runner.cfg.peak_traces:
        arm, _, length = spec.partition("@")
        if time.monotonic() > deadline or not runner.cuda:
            break
        try:
            res = runner.peak_trace(arm, int(length))
        except torch.OutOfMemoryError:
            runner.free()
            res = {"error": "out of memory"}
        traces.append({"arm": arm, "seq_len": int(length), **res})
        log.info("peak trace %s: %.2f GiB, reached at %s", spec,
                 res.get("peak_gib_in_step", float("nan")), res.get("peak_site"))
    if traces:
        rep.extra["peak_traces"] = traces


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, GpuBenchConfig, prog="lemo.gpu_bench",
                           description="", parser=_parser(), quick=QUICK)
    device = pick_device(cfg.device)
    if device == "cpu" and cfg.micro:
        raise ConfigError("micro: true needs a CUDA device (set micro=false for a CPU run)")
    t0 = time.monotonic()
    deadline = t0 + cfg.time_budget_s
    run_dir = make_run_dir(args.out, "lemo", "gpu_bench")
    set_seed(cfg.seed)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    command = "python -m lemo.gpu_bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    rep = BenchReport("lemo", baseline="lora", command=command)
    rep.extra["config"] = asdict(cfg)
    rep.extra["kernel_backend"] = _backend()

    def save() -> None:  # after every step: a crash or a time-out keeps what was measured
        rep.write(run_dir, plot_metrics=["peak_gib", "step_s"])

    if cfg.micro:
        microbenchmarks(rep, cfg)
        save()
    model = build_model(cfg.model, max(cfg.search_max, *cfg.seq_lens), device, cfg.lora_r,
                        cfg.lora_alpha)
    if any(a.startswith("lemo") for a in cfg.arms + cfg.search_arms) and cfg.scorer == "predictor":
        rep.extra["predictor_params"] = attach_predictors(model, cfg, device)
    runner = Runner(model, cfg, device)
    longest = lengths_then_longest(rep, runner, deadline, save)
    paired_timings(rep, runner, deadline, save)
    profiles(rep, runner, deadline)
    peak_traces(rep, runner, deadline)

    _summarise(rep, cfg, longest)
    rep.extra["elapsed_s"] = time.monotonic() - t0
    save()
    atomic_write_text(run_dir / "details.md", details_markdown(rep.to_dict()))
    log.info("wrote %s", run_dir / "bench.json")
    return 0


def details_markdown(data: dict) -> str:
    """The per-length table, kernel micro-benchmarks, longest lengths and the step profile."""
    v = data["versions"]
    parts = [f"Command: `{data['command']}`\n",
             f"Device: {v.get('device')}; torch {v.get('torch')}, triton {v.get('triton')}, "
             f"transformers {v.get('transformers')}, peft {v.get('peft')}, CUDA {v.get('cuda')}; "
             f"kernels: {data.get('kernel_backend')}\n"]
    cols = ["arm", "setting", "status", "peak_gib", "act_gib", "saved_gib", "step_s", "tflops"]
    parts += ["## Memory and step time\n", markdown_table(data["rows"], cols)]
    ratios = data.get("ratios", {})
    for metric in ("peak_gib", "step_s"):
        if ratios.get(metric):
            parts += [f"\n## {metric}: LoRA / arm (> 1: the arm is better)\n",
                      markdown_table(ratios[metric])]
    if data.get("longest"):
        parts += ["\n## Longest trainable length (tokens, batch 1)\n", markdown_table(
            [{"arm": a, **r} for a, r in data["longest"].items()])]
    if data.get("microbench"):
        parts += ["\n## Kernel micro-benchmarks (Triton vs PyTorch fallback, fwd+bwd)\n",
                  markdown_table(data["microbench"])]
    for p in data.get("profile", []):
        head = {k: v for k, v in p.items() if k != "top"}
        parts += [f"\n## CUDA time by kernel, {p['arm']} @ {p['seq_len']} tokens (one step)\n",
                  markdown_table([head])]
        if p.get("top"):
            parts.append(markdown_table(p["top"]))
    for t in data.get("peak_traces", []):
        parts += [f"\n## Live at the memory peak, {t['arm']} @ {t['seq_len']} tokens "
                  f"({t.get('peak_gib_in_step', float('nan')):.2f} GiB allocated in the step; "
                  f"peak reached at `{t.get('peak_site')}`)\n",
                  markdown_table(t.get("live_at_peak", []))]
    if data.get("checks"):
        parts += ["\n## Targets\n", markdown_table(data["checks"])]
    return "\n".join(parts)


def _backend() -> str:
    from lemo import kernels

    return kernels.backend()


def _summarise(rep: BenchReport, cfg: GpuBenchConfig, longest: dict) -> None:
    evaluate_targets(rep, cfg, longest)
    for metric, lower in (("peak_gib", True), ("act_gib", True), ("step_s", True)):
        rep.extra.setdefault("ratios", {})[metric] = rep.ratios(metric, lower_is_better=lower)

    def pick(arm, metric, s):
        return rep.value(arm, metric, _setting(s))

    s_mem = 16384 if 16384 in cfg.seq_lens else cfg.seq_lens[-1]
    r = _ratio(pick("lora", "peak_gib", s_mem), pick("lemo_full", "peak_gib", s_mem))
    if r is not None:
        rep.headline("up to 1.93x less peak memory than LoRA", f"{r:.2f}x", "LoRA (peft r=8)",
                     r, f"{_setting(s_mem)}, {rep.extra.get('device', '')}".strip(", "))
    s_time = 32768 if 32768 in cfg.seq_lens else cfg.seq_lens[-1]
    r = _ratio(pick("lora_ckpt", "step_s", s_time), pick("lemo_full_ckpt", "step_s", s_time))
    if r is not None:
        rep.headline("up to 1.36x faster steps than LoRA (both with checkpointing)", f"{r:.2f}x",
                     "LoRA + grad checkpointing", r, _setting(s_time))
    if math.isfinite(rep.extra.get("elapsed_s", 0.0)):
        rep.notes.append("step_s: CUDA-event median; tflops: dense LoRA model FLOPs / step time "
                         "(same numerator for every arm at a length)")


if __name__ == "__main__":
    run(main)


__all__ = ["GpuBenchConfig", "GpuModelConfig", "ARMS", "arm_setup", "build_model",
           "dense_flops", "main"]
