"""The flash layout file: exact round trip, page alignment, and clear errors on bad files."""

import numpy as np
import pytest

from ripple.layout import FlashLayout, make_bundles, write_layout
from shared.errors import DataError


def _bundles(n=37, d=24, layers=2, seed=0):
    rng = np.random.default_rng(seed)
    return [make_bundles(rng.normal(size=(n, d)), rng.normal(size=(n, d))).astype(np.float32)
            for _ in range(layers)]


def _orders(n=37, layers=2, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(layers)]


def test_loading_a_neuron_gives_exactly_its_weights(tmp_path):
    b, o = _bundles(), _orders()
    lay = FlashLayout(write_layout(tmp_path / "l.bin", b, o))
    for li in range(2):
        ids = np.array([0, 5, 36, 17])
        np.testing.assert_array_equal(lay.read_neurons(li, ids), b[li][ids])
        run = lay.read_slots(li, 3, 6)  # slots hold neurons in placement order
        np.testing.assert_array_equal(run, b[li][o[li][3:9]])
        np.testing.assert_array_equal(lay.orders[li], o[li])
    assert all(off % 4096 == 0 for off in lay.data_offsets)
    assert lay.bundle_bytes == 2 * 24 * 4
    lay.verify()


def test_fp16_layout_round_trips_to_fp16_precision(tmp_path):
    b, o = _bundles(layers=1), _orders(layers=1)
    lay = FlashLayout(write_layout(tmp_path / "h.bin", b, o, dtype="float16"))
    assert lay.bundle_bytes == 2 * 24 * 2
    np.testing.assert_array_equal(lay.read_neurons(0, np.arange(37)),
                                  b[0].astype(np.float16).astype(np.float32))


def test_corrupt_and_truncated_files_are_rejected(tmp_path):
    p = write_layout(tmp_path / "l.bin", _bundles(), _orders())
    raw = bytearray(p.read_bytes())
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOTMAGIC" + raw[8:])
    with pytest.raises(DataError, match="bad magic"):
        FlashLayout(bad)
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        FlashLayout(bad)
    lay = FlashLayout(p)
    flipped = bytearray(raw)
    perm_off = raw.index(b'"perm_offset"')
    off = int(raw[perm_off:].split(b":")[1].split(b",")[0])
    flipped[off] ^= 1
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="CRC"):
        FlashLayout(bad)
    flipped = bytearray(raw)
    flipped[lay.data_offsets[1] + 3] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="layer 1 fails its CRC"):
        FlashLayout(bad).verify()
    with pytest.raises(DataError, match="not found"):
        FlashLayout(tmp_path / "missing.bin")


def test_mismatched_permutation_is_rejected(tmp_path):
    o = _orders()
    lay = FlashLayout(write_layout(tmp_path / "l.bin", _bundles(), o))
    lay.check_placement(0, o[0])
    with pytest.raises(DataError, match="does not match"):
        lay.check_placement(0, o[1])
    with pytest.raises(DataError, match="not a permutation"):
        write_layout(tmp_path / "x.bin", _bundles(), [np.zeros(37, int), o[1]])
    with pytest.raises(DataError, match="bundles"):
        write_layout(tmp_path / "x.bin", [_bundles()[0], _bundles(n=36)[0]], o)
    assert not (tmp_path / "x.bin").exists()  # nothing half-written
