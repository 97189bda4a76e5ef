"""The frame pipeline's threads: side by side gives the same bits as one after another, errors
come through, a forked child gets a working pool, and the latency check's core pinning."""

import multiprocessing
import os
import threading
from concurrent.futures import Future

import numpy as np
import pytest

import mobifuse.denoise
import mobifuse.pipeline
import mobifuse.stereo
from mobifuse.config import SimConfig
from mobifuse.data import sim_calibration
from mobifuse.simulator import simulate_scene
from shared.errors import DataError

SMALL = SimConfig(width=128, height=96, focal_px=112.0, tof_width=64, tof_height=48,
                  tof_focal_px=56.0)


class _Inline:
    """An executor that runs each task at submission, in the calling thread."""

    def submit(self, fn, *args):
        f = Future()
        try:
            f.set_result(fn(*args))
        except Exception as e:  # noqa: BLE001 - handed to the caller as the pool would
            f.set_exception(e)
        return f


@pytest.fixture(scope="module")
def frame():
    raw = simulate_scene(5, SMALL)
    return raw, sim_calibration(SMALL)


def _prepare(raw, cal):
    return mobifuse.pipeline.prepare_frame(raw["left"], raw["right"], raw["tof_depth"],
                                           raw["tof_valid"], cal, raw["tof_amplitude"])


def test_threaded_frame_equals_the_sequential_one(frame, monkeypatch):
    raw, cal = frame
    threaded = _prepare(raw, cal)
    rng = np.random.default_rng(0)
    d = (1 + rng.random((97, 41))).astype(np.float32)
    s = (0.05 + 0.2 * rng.random((97, 41))).astype(np.float32)
    den = mobifuse.denoise.dei_bilateral(d, s)
    for mod in (mobifuse.stereo, mobifuse.pipeline, mobifuse.denoise):
        monkeypatch.setattr(mod, "pool", lambda: _Inline())
    sequential = _prepare(raw, cal)
    for k, v in sequential.items():
        if isinstance(v, np.ndarray):
            assert np.array_equal(v, threaded[k], equal_nan=v.dtype.kind == "f"), k
    assert np.array_equal(mobifuse.denoise.dei_bilateral(d, s), den)


def test_an_error_in_a_pool_task_reaches_the_caller(frame):
    """The ToF branch runs in the pool: extrinsics that put every ToF sample behind the
    camera still give the one-line DataError, and the pool keeps working after it."""
    raw, cal = frame
    bad = cal.to_json()
    bad["T_left_tof"] = np.array(bad["T_left_tof"], dtype=float)
    bad["T_left_tof"][2, 3] = -100.0  # 100 m behind the left camera
    bad["T_left_tof"] = bad["T_left_tof"].tolist()
    with pytest.raises(DataError, match="no ToF sample lands"):
        _prepare(raw, bad)
    assert _prepare(raw, cal)["tof"].shape == raw["depth"].shape


def test_a_caller_that_raises_still_waits_for_its_pool_tasks(frame, monkeypatch):
    """run_stereo's own SGBM call fails while the right view still runs in the pool: the error
    reaches the caller only after that task has finished (no work outlives the call)."""
    raw, cal = frame
    done = threading.Event()

    def slow_right(*args):
        threading.Event().wait(0.3)
        done.set()
        return np.zeros(raw["left"].shape[:2], np.float32)

    def failing(*args):
        raise RuntimeError("left view failed")

    monkeypatch.setattr(mobifuse.stereo, "right_disparity", slow_right)
    monkeypatch.setattr(mobifuse.stereo, "sgbm_disparity", failing)
    with pytest.raises(RuntimeError, match="left view failed"):
        mobifuse.stereo.run_stereo(raw["left"], raw["right"], cal,
                                   mobifuse.stereo.StereoConfig(), 2)
    assert done.is_set()


def _child(q):
    from mobifuse.threads import pool

    q.put(pool().submit(sum, [1, 2, 3]).result(timeout=20))


def test_a_forked_child_gets_a_working_pool():
    from mobifuse.threads import pool

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this OS")
    assert pool().submit(sum, [1]).result() == 1  # the parent's workers exist
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(30)
    assert p.exitcode == 0 and q.get(timeout=5) == 6


def test_pinned_cores_pins_every_thread_and_restores():
    """Inside, this thread, a thread started before and one started inside are on the first
    n allowed cores; after, all three are back on the caller's set."""
    from mobifuse.bench import pinned_cores

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("no CPU affinity on this OS, or one core: nothing to pin apart")
    allowed = os.sched_getaffinity(0)
    seen, go, stop = {}, threading.Event(), threading.Event()

    def worker(name, wait_first):
        if wait_first:
            go.wait()
        seen[name + "_inside"] = os.sched_getaffinity(0)
        stop.wait()
        seen[name + "_after"] = os.sched_getaffinity(0)

    before = threading.Thread(target=worker, args=("before", True))
    before.start()
    with pinned_cores(1) as cores:
        assert cores == sorted(allowed)[:1] and os.sched_getaffinity(0) == set(cores)
        go.set()
        inside = threading.Thread(target=worker, args=("inside", False))
        inside.start()
        for _ in range(500):  # both threads report within 5 s, else the asserts below fail
            if len(seen) >= 2:
                break
            threading.Event().wait(0.01)
    stop.set()
    before.join(5)
    inside.join(5)
    assert seen["before_inside"] == set(cores) and seen["inside_inside"] == set(cores)
    assert seen["before_after"] == allowed and seen["inside_after"] == allowed
    assert os.sched_getaffinity(0) == allowed


def test_net_latency_times_the_path_fuse_runs_and_restores_threads(monkeypatch):
    """`bench.latency` reports the traced net (as `fuse()` runs it) and the eager forward, both
    positive CPU seconds, and leaves torch's thread count and the process's cores as they were;
    the traced net it times gives the eager net's depth."""
    import torch

    import mobifuse.bench
    from mobifuse.api import run_net
    from mobifuse.bench import BenchConfig, latency
    from mobifuse.models import N_ERR, TwoStageFusionNet

    calls = []
    real = mobifuse.bench.run_net

    def counted(*args, **kwargs):
        calls.append(kwargs.get("jit", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(mobifuse.bench, "run_net", counted)
    torch.manual_seed(0)
    net = TwoStageFusionNet().eval()
    threads = torch.get_num_threads()
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    lat = latency(BenchConfig(latency_repeats=1), net)
    for k in ("net_cpu_s", "net_eager_cpu_s", "net_wall_s", "net_eager_wall_s", "sgbm_cpu_s"):
        assert lat[k] > 0, k
    assert calls and all(calls)  # warm-up, timed and fault-counted calls: all traced
    for k in ("net_minor_faults", "net_eager_minor_faults"):
        assert lat[k] is None or lat[k] >= 0, k
    assert torch.get_num_threads() == threads
    if cores is not None:
        assert os.sched_getaffinity(0) == cores
    g = np.random.default_rng(1).random((4, 240, 320)).astype(np.float32) * 4
    e = np.random.default_rng(2).random((N_ERR, 240, 320)).astype(np.float32)
    np.testing.assert_allclose(run_net(net, g, e, jit=True), run_net(net, g, e), atol=1e-5)


def test_minor_faults_counts_fresh_pages_of_a_call():
    """A call that maps, touches and frees 64 MiB (above glibc's largest mmap threshold) faults
    at least once per 2 MiB (huge pages, which numpy asks for) every time; a call that
    allocates nothing barely faults."""
    from mobifuse.bench import minor_faults

    pytest.importorskip("resource")
    big = minor_faults(lambda: np.ones(16 * 2**20, np.float32).sum(), 3)
    idle = minor_faults(lambda: None, 3)
    assert big >= 64 // 2
    assert idle < 4


def test_net_faults_bad_rounds_is_a_one_line_error(tmp_path, capsys):
    from mobifuse.experiments.net_faults import main
    from shared.cli import run

    out = tmp_path / "f.json"
    with pytest.raises(SystemExit) as e:
        run(main, ["--rounds", "0", "--out", str(out)])
    assert e.value.code == 2 and "--rounds" in capsys.readouterr().err
    assert not out.exists()
