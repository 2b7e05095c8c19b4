"""msgpack with numpy arrays, byte-compatible with upstream openpi's wire format.

An ndarray is packed as a map with *bin* keys `__ndarray__`, `data` (C-order bytes), `dtype` (`dtype.str`) and
`shape`; a numpy scalar that is not a Python float/str subclass as `{__npgeneric__, data: .item(), dtype}`.
Object, void and complex dtypes are refused (they cannot be rebuilt safely from bytes).
"""

import functools
import secrets

import msgpack
import numpy as np

_UNSUPPORTED_KINDS = ("V", "O", "c")


def _c_order_bytes(obj: np.ndarray):
    """The array's C-order bytes; a zero-copy view for C-contiguous arrays (msgpack packs it as the same bin)."""
    if obj.flags.c_contiguous and obj.size > 0:
        return memoryview(obj.reshape(-1).view(np.uint8))
    return obj.tobytes()  # copies into C order, also for non-contiguous views


def pack_array(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _UNSUPPORTED_KINDS:
        raise ValueError(f"Unsupported dtype: {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {
            b"__ndarray__": True,
            b"data": _c_order_bytes(obj),
            b"dtype": obj.dtype.str,
            b"shape": obj.shape,
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def unpack_array(obj):
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


Packer = functools.partial(msgpack.Packer, default=pack_array)
packb = functools.partial(msgpack.packb, default=pack_array)

Unpacker = functools.partial(msgpack.Unpacker, object_hook=unpack_array)
unpackb = functools.partial(msgpack.unpackb, object_hook=unpack_array)


# --- Zero-copy variants (same bytes / same decoded values; used by the client and the server) ---------------------

ZERO_COPY_MIN_BYTES = 1 << 16
"""Arrays of at least this many bytes travel as views of their memory; smaller ones are cheaper to copy."""

# An upstream ndarray map starts with these bytes when its data is a bin32 (>= 64 kB): fixmap(4), the key
# `__ndarray__` (bin8), True, the key `data` (bin8), then the bin32 header of the data.
_NDARRAY_BIN32 = b"\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc6"


class PartsPacker:
    """Packs exactly like `packb`, but returns the message as a list of pieces whose concatenation is
    `packb(obj)`: large C-contiguous arrays are zero-copy views of the arrays' own memory, the rest is small msgpack.

    How: the object is packed once by msgpack with every large array's data replaced by a unique 8-byte marker
    (a bin8), then the packed bytes are cut at the markers and the real bin32 header + array view go in between.
    Not thread-safe (like `msgpack.Packer`); one per connection.
    """

    def __init__(self, min_bytes: int = ZERO_COPY_MIN_BYTES) -> None:
        self._min_bytes = max(int(min_bytes), 1 << 16)  # below 64 kB msgpack would use a bin8/bin16 header
        self._token = secrets.token_bytes(6)
        self._views: list[memoryview] = []
        self._packer = msgpack.Packer(default=self._default)

    def _default(self, obj):
        if (
            type(obj) is np.ndarray
            and obj.nbytes >= self._min_bytes
            and obj.flags.c_contiguous
            and obj.dtype.kind not in _UNSUPPORTED_KINDS
            and len(self._views) < 0xFFFF
        ):
            marker = self._token + len(self._views).to_bytes(2, "big")
            self._views.append(memoryview(obj.reshape(-1).view(np.uint8)))
            return {b"__ndarray__": True, b"data": marker, b"dtype": obj.dtype.str, b"shape": obj.shape}
        return pack_array(obj)

    def pack_parts(self, obj) -> list:
        self._views.clear()
        try:
            small = self._packer.pack(obj)
            if not self._views:
                return [small]
            parts, start = [], 0
            for i, view in enumerate(self._views):
                marker = b"\xc4\x08" + self._token + i.to_bytes(2, "big")
                pos = small.find(marker, start)
                if pos < 0 or small.count(marker) != 1:  # the marker also occurs in the user's data: no shortcut
                    return [packb(obj)]
                parts.append(small[start:pos] + b"\xc6" + len(view).to_bytes(4, "big"))
                parts.append(view)
                start = pos + len(marker)
            parts.append(small[start:])
            return parts
        finally:
            self._views.clear()
            self._packer.reset()


def unpackb_views(message):
    """`unpackb` whose large arrays are read-only views into `message` instead of copies of it.

    Same values as `unpackb` for every input (errors included). Only an immutable `bytes` message is viewed; anything
    else is decoded by `unpackb`. Each large array keeps the whole message alive while it is referenced.
    How: the bin32 payloads of upstream-layout ndarray maps are located by their fixed header bytes, cut out, and
    replaced by a small index; msgpack decodes the remaining few hundred bytes, and the object hook puts the views
    in. Any inconsistency (e.g. the header bytes occurring inside some other field) falls back to `unpackb`.
    """
    if type(message) is not bytes or len(message) < ZERO_COPY_MIN_BYTES:
        return unpackb(message)
    pieces, spans = [], []
    start = pos = 0
    find = message.find
    while (p := find(_NDARRAY_BIN32, pos)) >= 0:
        head = p + len(_NDARRAY_BIN32)
        n = int.from_bytes(message[head : head + 4], "big")
        if n < ZERO_COPY_MIN_BYTES or head + 4 + n > len(message) or len(spans) >= 0xFFFF:
            pos = head
            continue
        pieces.append(message[start : head - 1])
        pieces.append(b"\xcd" + len(spans).to_bytes(2, "big"))  # uint16 index in place of the bin32
        spans.append((head + 4, n))
        start = pos = head + 4 + n
    if not spans:
        return unpackb(message)
    pieces.append(message[start:])
    view = memoryview(message)
    used: list[int] = []

    def hook(obj):
        if b"__ndarray__" in obj and type(data := obj.get(b"data")) is int:
            offset, n = spans[data]
            used.append(data)
            obj[b"data"] = view[offset : offset + n]
        return unpack_array(obj)

    try:
        out = msgpack.unpackb(b"".join(pieces), object_hook=hook)
    except Exception:
        return unpackb(message)  # raises the real error if the message is malformed
    if used != list(range(len(spans))):
        return unpackb(message)
    return out
