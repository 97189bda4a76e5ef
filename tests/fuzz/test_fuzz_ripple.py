"""Fuzz: ripple loaders (activation mask .npz files, the flash layout file).

The layout header is covered by its own CRC (a changed `d` or dtype can no longer pass and
return wrong bundles), every declared size and offset must fit the file, and a mask file's
declared shapes are bounded before anything is unpacked.
"""

import json
import struct
import zlib

import numpy as np
import pytest
from fuzz_harness import (
    Target,
    assert_clean,
    assert_rejects,
    fuzz_settings,
    mutated_files_test,
)
from hypothesis import given
from hypothesis import strategies as st

from ripple.data import load_masks, save_masks
from ripple.layout import MAGIC, FlashLayout, write_layout

RNG = np.random.default_rng(0)
BUNDLES = [RNG.normal(size=(6, 2, 5)).astype(np.float32) for _ in range(2)]
ORDERS = [np.arange(6)[::-1].copy(), np.array([2, 0, 1, 5, 4, 3])]
MASKS = RNG.random((2, 7, 12)) < 0.3


def _seed_layout(d):
    write_layout(d / "layout.bin", BUNDLES, ORDERS, page=512)


def _read_layout(d):
    lay = FlashLayout(d / "layout.bin")
    lay.verify()
    return lay, [lay.read_slots(li, 0, lay.n) for li in range(lay.layers)]


def _check_layout(out, d):
    lay, slots = out
    for li in range(2):  # accepted means: exactly the bundles written, in placement order
        assert np.array_equal(lay.orders[li], ORDERS[li])
        assert np.array_equal(slots[li], BUNDLES[li][ORDERS[li]]), "wrong bundles"


def _seed_masks(d):
    save_masks(d / "masks.npz", MASKS)


def _check_masks(m, d):
    assert m.dtype == bool and np.array_equal(m, MASKS), "wrong masks"


TARGETS = [
    Target("flash-layout", _seed_layout, _read_layout, _check_layout, ("layout.bin",)),
    Target("masks", _seed_masks, lambda d: load_masks(d / "masks.npz"), _check_masks,
           ("masks.npz",)),
]
BY_NAME = {t.name: t for t in TARGETS}


test_mutated_files = mutated_files_test(TARGETS, 360, files=1)


def _rewrite_header(path, edit, fix_crc=True):
    raw = bytearray(path.read_bytes())
    hlen, _ = struct.unpack("<II", raw[8:16])
    h = json.loads(raw[16:16 + hlen])
    h.update(edit)
    blob = json.dumps(h).encode()
    crc = zlib.crc32(blob) if fix_crc else struct.unpack("<I", raw[12:16])[0]
    head = MAGIC + struct.pack("<II", len(blob), crc) + blob
    raw[:16 + hlen] = head + b" " * max(0, hlen - len(blob))  # keep later offsets in place
    path.write_bytes(bytes(raw))


HEADER_VALUES = st.sampled_from([0, 1, 2, 3, 4, 5, 6, -1, 10**9, 2**40, "6", None, 1.5, [],
                                 "float16", "float64", "object", "<f4", True])


@fuzz_settings(360)
@given(edits=st.dictionaries(st.sampled_from(["version", "layers", "n", "parts", "d", "dtype",
                                              "page", "bundle_bytes", "perm_offset",
                                              "perm_crc32", "data_offsets", "data_crc32"]),
                             HEADER_VALUES, min_size=1, max_size=3),
       fix_crc=st.booleans())
def test_structured_layout_header(tmp_path_factory, edits, fix_crc):
    """Header fields changed, with and without a matching header CRC: never a foreign error,
    a huge read or wrong bundles."""
    t = BY_NAME["flash-layout"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    _rewrite_header(d / "layout.bin", edits, fix_crc)
    assert_clean(t, d)


@fuzz_settings(240)
@given(shape=st.lists(st.sampled_from([0, 1, 2, 7, 12, 13, -12, 2**40]), min_size=1,
                      max_size=4),
       bits_shape=st.sampled_from([(2, 7, 2), (2, 7, 1), (7, 2), (2, 7, 2, 1), (0,)]),
       dtype=st.sampled_from(["u1", "i8", "f4", "O"]))
def test_structured_masks(tmp_path_factory, shape, bits_shape, dtype):
    t = BY_NAME["masks"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    bits = np.zeros(bits_shape, dtype=dtype)
    np.savez(d / "masks.npz", bits=bits, shape=np.asarray(shape, dtype=np.int64))

    def check(m, d):  # another valid mask file: the declared shape, all bits as stored (0)
        assert m.dtype == bool and m.shape == tuple(shape) and not m.any()

    assert_clean(Target("masks", t.seed, t.load, check), d)


# --- regressions


@pytest.mark.parametrize("edit, words", [
    ({"d": 4}, "header fails its CRC"), ({"dtype": "float16"}, "header fails its CRC"),
    ({"layers": 10**9}, "header fails its CRC"),
])
def test_layout_header_changes_fail_the_crc(tmp_path, edit, words):
    t = BY_NAME["flash-layout"]
    d = t.fresh(tmp_path)
    _rewrite_header(d / "layout.bin", edit, fix_crc=False)
    assert_rejects(t, d, words)


@pytest.mark.parametrize("edit, words", [
    ({"layers": 10**9}, "data offsets for 1000000000 layers"),
    ({"d": 4}, "bundle_bytes"), ({"dtype": "object"}, "dtype"),
    ({"perm_offset": 10**12}, "truncated"), ({"n": -1}, "integer >= 0"),
])
def test_layout_header_fields_are_checked_even_with_a_valid_crc(tmp_path, edit, words):
    t = BY_NAME["flash-layout"]
    d = t.fresh(tmp_path)
    _rewrite_header(d / "layout.bin", edit, fix_crc=True)
    assert_rejects(t, d, words)


def test_masks_declared_shape_is_bounded(tmp_path):
    t = BY_NAME["masks"]
    d = t.fresh(tmp_path)
    np.savez(d / "masks.npz", bits=np.zeros((2, 7, 2), np.uint8),
             shape=np.array([2, 7, 2**40], np.int64))
    assert_rejects(t, d, "do not match shape")
    d = t.fresh(tmp_path)
    np.savez(d / "masks.npz", bits=np.array([None], dtype=object), shape=np.array([1, 1, 1]))
    assert_rejects(t, d, "Python objects")


def test_masks_member_flagged_encrypted(tmp_path):
    t = BY_NAME["masks"]
    d = t.fresh(tmp_path)
    raw = bytearray((d / "masks.npz").read_bytes())
    i = raw.rfind(b"PK\x01\x02")  # the last central-directory entry: set its "encrypted" bit
    raw[i + 8] |= 1
    (d / "masks.npz").write_bytes(bytes(raw))
    assert_rejects(t, d, "corrupt mask file")
