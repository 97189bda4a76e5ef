"""Neuron bundles and the flash layout file (Ripple §4.1 "neuron bundles", §4.2 file layout).

A *bundle* is everything one FFN neuron needs, stored together so one read fetches it: neuron i
= row i of up (fc1.weight[i], d values) + column i of down (fc2.weight[:, i], d values), and for
gated (Llama-style) FFNs row i of gate first; biases stay in DRAM (n + d values, negligible).
Bundle bytes = P·d·itemsize with P = 2 (OPT) or 3 parts.

File format (all offsets page-aligned, little-endian):

    page 0..      b"RIPLFLSH" | u32 header_len | u32 header_crc32 | JSON header (version, layers,
                  n, parts, d, dtype, page, bundle_bytes, perm_offset, data_offsets,
                  perm_crc32, data_crc32)
    perm_offset   int64 (layers, n): order[l] (slot -> neuron), i.e. the placement
    data_offsets[l]  n bundles of layer l in placement order: slot s holds neuron order[l][s]

`FlashLayout` opens a file, checks magic, the header's CRC, that every declared size and offset
fits the file, and the permutation's CRC (a corrupt or truncated file is a DataError), and loads
bundles either by neuron id or as raw slot extents.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ripple.placement import check_placement, slots_of
from shared.errors import DataError
from shared.io import atomic_path

__all__ = ["MAGIC", "make_bundles", "write_layout", "FlashLayout"]

MAGIC = b"RIPLFLSH"
_VERSION = 2  # 2: the header carries its own CRC
_DTYPES = ("float16", "float32", "float64")


def _align(x: int, page: int) -> int:
    return -(-x // page) * page


def make_bundles(up: np.ndarray, down: np.ndarray, gate: np.ndarray | None = None) -> np.ndarray:
    """Row-column bundles: up, down (and gate) (n, d) -> (n, P, d): [up_i, down_i] or
    [gate_i, up_i, down_i]."""
    parts = [np.asarray(x) for x in ([gate] if gate is not None else []) + [up, down]]
    if parts[0].ndim != 2 or any(x.shape != parts[0].shape for x in parts):
        raise DataError(f"bundles: up/down/gate must all be (n, d), got "
                        f"{[x.shape for x in parts]}")
    return np.stack(parts, axis=1)


def write_layout(path: str | Path, bundles: list[np.ndarray], orders: list[np.ndarray],
                 dtype: str = "float32", page: int = 4096) -> Path:
    """Write per-layer bundles (n, P, d) in placement order to `path`, atomically."""
    if not bundles or len(bundles) != len(orders):
        raise DataError(f"layout: {len(bundles)} bundle arrays for {len(orders)} placements")
    shape = np.asarray(bundles[0]).shape
    if len(shape) != 3 or shape[1] < 2:
        raise DataError(f"layout: bundles must be (n, parts>=2, d), got {shape}")
    n, parts, d = shape
    for li, b in enumerate(bundles):
        if np.asarray(b).shape != shape:
            raise DataError(f"layout: layer {li} bundles {np.asarray(b).shape} != {shape}")
    orders = [check_placement(o, n, f"placement of layer {li}") for li, o in enumerate(orders)]
    if dtype not in _DTYPES:
        raise DataError(f"layout: dtype '{dtype}' is not one of {_DTYPES}")
    itemsize = np.dtype(dtype).itemsize
    bundle_bytes = parts * d * itemsize
    perm = np.stack(orders).astype("<i8")
    header = {"version": _VERSION, "layers": len(bundles), "n": n, "parts": parts, "d": d,
              "dtype": dtype,
              "page": page, "bundle_bytes": bundle_bytes, "perm_crc32": zlib.crc32(perm.tobytes())}
    # header size must be known before offsets; reserve generously (offsets are short ints)
    head_room = _align(len(json.dumps(header)) + 64 * (len(bundles) + 4) + 256, page)
    perm_off = head_room
    data_off = [_align(perm_off + perm.nbytes, page) + li * _align(n * bundle_bytes, page)
                for li in range(len(bundles))]
    datas = [np.ascontiguousarray(np.asarray(b, dtype=dtype)[o]).astype(
        np.dtype(dtype).newbyteorder("<")).tobytes() for b, o in zip(bundles, orders)]
    header.update(perm_offset=perm_off, data_offsets=data_off,
                  data_crc32=[zlib.crc32(x) for x in datas])
    blob = json.dumps(header).encode()
    if len(MAGIC) + 8 + len(blob) > head_room:
        raise DataError("layout: header does not fit its reserved pages")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<II", len(blob), zlib.crc32(blob)) + blob)
            f.seek(perm_off)
            f.write(perm.tobytes())
            for off, x in zip(data_off, datas):
                f.seek(off)
                f.write(x)
            f.truncate(_align(data_off[-1] + len(datas[-1]), page))
    return path


class FlashLayout:
    """An opened layout file: placement per layer and bundle reads (by neuron or by slot)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"layout file not found: {self.path}")
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(16)
            if len(head) < 16 or head[:8] != MAGIC:
                raise DataError(f"{self.path}: not a Ripple layout file (bad magic)")
            hlen, hcrc = struct.unpack("<II", head[8:])
            blob = f.read(min(hlen, size))
            if len(blob) != hlen or zlib.crc32(blob) != hcrc:
                raise DataError(f"{self.path}: layout header fails its CRC (corrupt, truncated "
                                f"or written by an older version)")
            h = self._parse_header(blob)
            perm_off, perm_crc = h["perm_offset"], h["perm_crc32"]
            end = max(perm_off + self.layers * self.n * 8,
                      max(self.data_offsets) + self.n * self.bundle_bytes)
            if size < end:
                raise DataError(f"{self.path}: truncated ({size} bytes, layout needs {end})")
            f.seek(perm_off)
            raw = f.read(self.layers * self.n * 8)
        if zlib.crc32(raw) != perm_crc:
            raise DataError(f"{self.path}: permutation block fails its CRC (corrupt file)")
        perm = np.frombuffer(raw, dtype="<i8").reshape(self.layers, self.n).astype(np.int64)
        self.orders = [check_placement(p, self.n, f"{self.path} layer {i}")
                       for i, p in enumerate(perm)]
        self.slots = [slots_of(o) for o in self.orders]

    def _parse_header(self, blob: bytes) -> dict:
        """The JSON header with every field typed and consistent; sets the layout attributes."""
        try:
            h = json.loads(blob)
            ints = {k: h[k] for k in ("version", "layers", "n", "parts", "d", "page",
                                      "bundle_bytes", "perm_offset", "perm_crc32")}
            lists = {k: h[k] for k in ("data_offsets", "data_crc32")}
            dtype = h["dtype"]
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{self.path}: corrupt layout header ({type(e).__name__})") from None
        for k, v in [*ints.items(), *((f"{k}[]", x) for k, xs in lists.items()
                                      for x in (xs if isinstance(xs, list) else [None]))]:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise DataError(f"{self.path}: layout header field '{k}' must be an integer "
                                f">= 0, got {v!r}")
        if ints["version"] != _VERSION:
            raise DataError(f"{self.path}: layout version {ints['version']}, expected {_VERSION}")
        if dtype not in _DTYPES:
            raise DataError(f"{self.path}: layout dtype {dtype!r} is not one of {_DTYPES}")
        self.layers, self.n, self.d, self.parts = ints["layers"], ints["n"], ints["d"], \
            ints["parts"]
        self.dtype, self.page, self.bundle_bytes = np.dtype(dtype), ints["page"], \
            ints["bundle_bytes"]
        if min(self.layers, self.n, self.d, self.page) < 1 or self.parts < 2:
            raise DataError(f"{self.path}: layout header has an empty size (layers, n, d, page "
                            f"must be >= 1, parts >= 2)")
        if self.bundle_bytes != self.parts * self.d * self.dtype.itemsize:
            raise DataError(f"{self.path}: bundle_bytes {self.bundle_bytes} != parts x d x "
                            f"itemsize")
        if len(lists["data_offsets"]) != self.layers or len(lists["data_crc32"]) != self.layers:
            raise DataError(f"{self.path}: layout header lists {len(lists['data_offsets'])} data "
                            f"offsets for {self.layers} layers")
        self.data_offsets, self.data_crc32 = lists["data_offsets"], lists["data_crc32"]
        return ints

    def check_placement(self, layer: int, order: np.ndarray) -> None:
        """Raise DataError unless `order` is exactly the placement stored for `layer`."""
        o = check_placement(order, self.n, f"placement of layer {layer}")
        if not np.array_equal(o, self.orders[layer]):
            raise DataError(f"{self.path}: placement of layer {layer} does not match the "
                            f"permutation stored in the layout file")

    def extent(self, layer: int, slot: np.ndarray, count: np.ndarray) -> tuple:
        """Byte (offsets, lengths) of slot runs [slot, slot+count) of `layer`."""
        slot, count = np.asarray(slot, dtype=np.int64), np.asarray(count, dtype=np.int64)
        return self.data_offsets[layer] + slot * self.bundle_bytes, count * self.bundle_bytes

    def decode(self, raw: bytes | memoryview, count: int) -> np.ndarray:
        """Raw bytes of `count` consecutive bundles -> (count, P, d) float32."""
        a = np.frombuffer(raw, dtype=self.dtype.newbyteorder("<"),
                          count=count * self.parts * self.d)
        return a.reshape(count, self.parts, self.d).astype(np.float32)

    def read_slots(self, layer: int, start: int, count: int) -> np.ndarray:
        """Bundles of slots [start, start+count) of `layer` (count, P, d), buffered read."""
        if not (0 <= layer < self.layers and 0 <= start and 0 <= count and
                start + count <= self.n):
            raise DataError(f"{self.path}: slots [{start}, {start + count}) of layer {layer} are "
                            f"outside the layout ({self.layers} layers x {self.n} slots)")
        off, ln = self.extent(layer, start, count)
        with open(self.path, "rb") as f:
            raw = os.pread(f.fileno(), int(ln), int(off))
        if len(raw) != ln:
            raise DataError(f"{self.path}: short read at offset {off}")
        return self.decode(raw, count)

    def read_neurons(self, layer: int, neurons: np.ndarray) -> np.ndarray:
        """Bundles of the given neuron ids (k, P, d), one read per neuron (slow, for checks)."""
        return np.stack([self.read_slots(layer, int(self.slots[layer][i]), 1)[0]
                         for i in np.asarray(neurons).tolist()]) if len(neurons) else \
            np.zeros((0, self.parts, self.d), np.float32)

    def verify(self) -> None:
        """Check every layer's data block against its CRC (reads the whole file)."""
        with open(self.path, "rb") as f:
            for li, off in enumerate(self.data_offsets):
                raw = os.pread(f.fileno(), self.n * self.bundle_bytes, off)
                if zlib.crc32(raw) != self.data_crc32[li]:
                    raise DataError(f"{self.path}: data of layer {li} fails its CRC")
