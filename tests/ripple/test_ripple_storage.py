"""The UFS model's closed forms and real O_DIRECT reads (with the tmpfs fallback)."""

import logging
import os

import numpy as np
import pytest

from ripple.storage import DirectReader, UFSModel


def test_ufs_model_closed_forms():
    u = UFSModel(bandwidth=2.9e9, knee_bytes=24576, queue_depth=32)
    assert u.latency(np.full(32, 4096)) == pytest.approx(32 / u.iops_max)  # IOPS-bound
    assert u.latency(np.array([1 << 20])) == pytest.approx((1 << 20) / 2.9e9)  # byte-bound
    assert u.latency(np.full(33, 4096)) == pytest.approx(33 / u.iops_max)  # 2 batches
    assert u.latency(np.array([])) == 0.0
    # bandwidth grows linearly with read size up to the knee, flat above it
    bw = [s / u.latency(np.array([s])) for s in (4096, 12288, 24576, 98304)]
    assert bw[1] == pytest.approx(3 * bw[0]) and bw[2] == pytest.approx(2.9e9)
    assert bw[3] == pytest.approx(2.9e9)
    assert u.lower_bound(2.9e9) == pytest.approx(1.0)


def _check_reads(path, data):
    with DirectReader(path, workers=4) as r:
        offs, lens = np.array([100, 8192, 20000]), np.array([50, 4096, 9000])
        for qd in (1, 4):
            assert r.read(offs, lens, queue_depth=qd) > 0
            lo = (offs // 4096) * 4096
            got = bytes(r.buf[: 4096])
            assert got == data[lo[0]: lo[0] + 4096]
        return r.direct


def test_direct_reads_return_the_file_bytes(tmp_path):
    data = os.urandom(64 * 1024)
    (tmp_path / "f.bin").write_bytes(data)
    _check_reads(tmp_path / "f.bin", data)


def test_filesystem_without_o_direct_falls_back_with_a_warning(tmp_path, monkeypatch, caplog):
    """tmpfs before Linux 6.6 (and some overlays) refuse O_DIRECT with EINVAL: simulate that."""
    import errno

    data = os.urandom(64 * 1024)
    (tmp_path / "f.bin").write_bytes(data)
    real_open = os.open

    def no_direct(path, flags, *a):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", no_direct)
    with caplog.at_level(logging.WARNING):
        direct = _check_reads(tmp_path / "f.bin", data)
    assert not direct and "O_DIRECT not supported" in caplog.text


def test_direct_flag_is_reported(tmp_path):
    (tmp_path / "f.bin").write_bytes(os.urandom(8192))
    with DirectReader(tmp_path / "f.bin", workers=1) as r:
        assert r.direct in (True, False)
        with pytest.raises(Exception, match="short read"):
            r.read(np.array([1 << 20]), np.array([4096]))
