"""msgpack with numpy arrays, byte-compatible with upstream openpi's wire format, and a decoder that trusts nothing.

An ndarray is packed as a map with *bin* keys `__ndarray__`, `data` (C-order bytes), `dtype` (`dtype.str`) and
`shape`; a numpy scalar that is not a Python float/str subclass as `{__npgeneric__, data: .item(), dtype}`.
Object, void and complex dtypes are refused by the packer (they cannot be rebuilt safely from bytes).

Decoding (`unpackb`, `unpackb_views`) is the same code for the server (requests) and the client (replies), and checks
everything before a single numpy object is built from the sender's bytes:
- only bool, signed / unsigned integer (1, 2, 4, 8 bytes) and float (2, 4, 8 bytes) dtypes, written as a plain
  dtype string (`"<f4"`, `"|u1"`, `">i2"`, ...) in native or explicit byte order; object, void / structured,
  complex, string, bytes and datetime dtypes (and anything else) are refused;
- `shape` is a list of non-negative integers (at most 32 axes) and the data length is exactly
  prod(shape) * itemsize (an empty array's other axes are bounded too); bool data holds only 0 and 1;
- `__npgeneric__` values have the Python type of their dtype and fit it;
- the message is at most `max_depth` containers deep, holds at most `max_objects` msgpack values, at most
  `max_arrays` arrays and at most `max_total_bytes` of array data; msgpack ext types are refused.
A refused message raises `DecodeError` (a `ValueError`) whose text names the field (`images/cam_high`) and what
was wrong. The wire bytes of valid messages are unchanged (the packer is upstream's).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

import msgpack
import numpy as np

_UNSUPPORTED_KINDS = ("V", "O", "c")


class DecodeError(ValueError):
    """A message the decoder refuses; the text names the field and the problem."""


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    max_depth: int = 32
    """Nesting depth of maps / lists (an observation with nested image dicts is 4 deep)."""
    max_objects: int = 1 << 18
    """msgpack values (keys, scalars, containers) in one message: bounds the memory of the decoded objects (a
    typical observation has ~60; arrays count as a few values whatever their size)."""
    max_arrays: int = 1024
    max_total_bytes: int = 1 << 30
    """Array data in one message, summed."""


DEFAULT_LIMITS = DecodeLimits()


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


Packer = functools.partial(msgpack.Packer, default=pack_array)
packb = functools.partial(msgpack.packb, default=pack_array)


# --- Decoding --------------------------------------------------------------------------------------------------------

_ACCEPTED_DTYPE = re.compile(r"[<>=|]?(?:b1|[iu][1248]|f[248])")
_KIND_NAMES = {
    "O": "an object dtype",
    "V": "a void / structured dtype",
    "c": "a complex dtype",
    "U": "a string dtype",
    "S": "a bytes dtype",
    "a": "a bytes dtype",
    "M": "a datetime dtype",
    "m": "a timedelta dtype",
}
_ACCEPTED_TEXT = "accepted: bool (b1), int/uint (i1..i8, u1..u8), float (f2, f4, f8), e.g. '<f4', '|u1'"
_MAX_NDIM = 32
_FLOAT_MAX = {
    2: float(np.finfo(np.float16).max),
    4: float(np.finfo(np.float32).max),
    8: float(np.finfo(np.float64).max),
}


class _Refused(Exception):
    """Raised inside the object hook; turned into a DecodeError that names the field."""


_DTYPES: dict[str, np.dtype] = {}  # accepted spellings only (a few dozen exist), so it stays small


def _dtype_of(spec) -> np.dtype:
    if type(spec) is str and (dtype := _DTYPES.get(spec)) is not None:
        return dtype
    if type(spec) is bytes:  # a hand-built message may send the dtype string as bin
        spec = spec.decode("ascii", "replace")
    if type(spec) is not str:
        raise _Refused(f"dtype must be a dtype string ({_ACCEPTED_TEXT}), got a {type(spec).__name__}")
    if not _ACCEPTED_DTYPE.fullmatch(spec):
        kind = spec.lstrip("<>=|")[:1]
        what = _KIND_NAMES.get(kind, "not an accepted dtype string")
        raise _Refused(f"dtype {spec[:40]!r} is {what}; {_ACCEPTED_TEXT}")
    dtype = _DTYPES[spec] = np.dtype(spec)
    return dtype


def _array_of(obj: dict, budget: list | None) -> np.ndarray:
    """The checked array of an `__ndarray__` map. `budget`: [arrays left, bytes left, limits] of the message."""
    dtype = _dtype_of(obj.get(b"dtype"))
    shape = obj.get(b"shape")
    if type(shape) not in (list, tuple) or len(shape) > _MAX_NDIM:
        raise _Refused(f"shape must be a list of at most {_MAX_NDIM} non-negative integers, got {_short(shape)}")
    for d in shape:
        if type(d) is not int or d < 0:
            raise _Refused(f"shape must be a list of at most {_MAX_NDIM} non-negative integers, got {_short(shape)}")
    data = obj.get(b"data")
    if type(data) not in (bytes, memoryview):
        raise _Refused(f"data must be msgpack bin (the array's C-order bytes), got a {type(data).__name__}")
    n = len(data) if type(data) is bytes else data.nbytes
    expected = math.prod(shape) * dtype.itemsize
    if n != expected:
        raise _Refused(
            f"data is {n} bytes but shape {list(shape)} of dtype {dtype.str} needs {expected} bytes "
            "(prod(shape) * itemsize)"
        )
    if not expected and len(shape) > 1:  # empty: its other axes could still be huge, e.g. (2**40, 0)
        limit = (budget[2] if budget is not None else DEFAULT_LIMITS).max_total_bytes
        if math.prod(d or 1 for d in shape) * dtype.itemsize > limit:
            raise _Refused(f"shape {list(shape)} is empty but its other axes are too long (limit {limit} bytes)")
    if budget is not None:
        budget[0] -= 1
        budget[1] -= n
        if budget[0] < 0:
            raise DecodeError(f"message holds more than {budget[2].max_arrays} arrays")
        if budget[1] < 0:
            raise DecodeError(f"message holds more than {budget[2].max_total_bytes} bytes of array data")
    if dtype.kind == "b" and n and np.frombuffer(data, np.uint8).max() > 1:
        raise _Refused("bool data must hold only 0 and 1 bytes")
    return np.ndarray(buffer=data, dtype=dtype, shape=shape)


def _scalar_of(obj: dict) -> np.generic:
    dtype = _dtype_of(obj.get(b"dtype"))
    value = obj.get(b"data")
    kind = dtype.kind
    if kind == "b":
        if type(value) is not bool:
            raise _Refused(f"a {dtype.str} scalar must carry a bool, got {_short(value)}")
    elif kind in "iu":
        info = np.iinfo(dtype)
        if type(value) is not int or not info.min <= value <= info.max:
            raise _Refused(f"a {dtype.str} scalar must carry an int in [{info.min}, {info.max}], got {_short(value)}")
    elif type(value) not in (float, int) or (math.isfinite(value) and abs(value) > _FLOAT_MAX[dtype.itemsize]):
        raise _Refused(f"a {dtype.str} scalar must carry a float within its range, got {_short(value)}")
    return dtype.type(value)


def _short(value) -> str:
    """A few words on a refused value, without building a huge repr."""
    if isinstance(value, (bytes, str, list, dict)) and len(value) > 16:
        return f"{type(value).__name__} of length {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _convert(obj: dict, budget: list | None):
    if b"__ndarray__" in obj:
        return _array_of(obj, budget)
    if b"__npgeneric__" in obj:
        return _scalar_of(obj)
    return obj


def unpack_array(obj):
    """The object hook (upstream's name): rebuilds an ndarray / numpy scalar map after checking it."""
    try:
        return _convert(obj, None)
    except _Refused as e:
        raise DecodeError(str(e)) from None


Unpacker = functools.partial(msgpack.Unpacker, object_hook=unpack_array)
"""Streaming decoder (upstream API): arrays are checked, but depth / count limits apply only to `unpackb`."""


_SCALAR, _MAP, _ARRAY, _EXT, _INVALID = range(5)


def _head(buf, pos: int) -> tuple[int, int, int]:
    """(kind, number of contained values, position after the header or scalar) of the msgpack value at `pos`."""
    b = buf[pos]
    if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):  # fixint, nil, bool
        return _SCALAR, 0, pos + 1
    if b <= 0x8F:
        return _MAP, 2 * (b & 0x0F), pos + 1
    if b <= 0x9F:
        return _ARRAY, b & 0x0F, pos + 1
    if b <= 0xBF:  # fixstr
        return _SCALAR, 0, pos + 1 + (b & 0x1F)
    if b in (0xC4, 0xD9):  # bin8, str8
        return _SCALAR, 0, pos + 2 + buf[pos + 1]
    if b in (0xC5, 0xDA):  # bin16, str16
        return _SCALAR, 0, pos + 3 + int.from_bytes(buf[pos + 1 : pos + 3], "big")
    if b in (0xC6, 0xDB):  # bin32, str32
        return _SCALAR, 0, pos + 5 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
    if b in (0xCC, 0xD0):
        return _SCALAR, 0, pos + 2
    if b in (0xCD, 0xD1):
        return _SCALAR, 0, pos + 3
    if b in (0xCA, 0xCE, 0xD2):  # float32, uint32, int32
        return _SCALAR, 0, pos + 5
    if b in (0xCB, 0xCF, 0xD3):  # float64, uint64, int64
        return _SCALAR, 0, pos + 9
    if b == 0xDC:
        return _ARRAY, int.from_bytes(buf[pos + 1 : pos + 3], "big"), pos + 3
    if b == 0xDD:
        return _ARRAY, int.from_bytes(buf[pos + 1 : pos + 5], "big"), pos + 5
    if b == 0xDE:
        return _MAP, 2 * int.from_bytes(buf[pos + 1 : pos + 3], "big"), pos + 3
    if b == 0xDF:
        return _MAP, 2 * int.from_bytes(buf[pos + 1 : pos + 5], "big"), pos + 5
    if 0xC7 <= b <= 0xC9 or 0xD4 <= b <= 0xD8:
        return _EXT, 0, pos
    return _INVALID, 0, pos  # 0xc1: never used


def _check_structure(buf, limits: DecodeLimits) -> None:
    """Walk the msgpack headers (without building anything): nesting depth, number of values, no ext types.

    Costs one step per msgpack value (bin / str payloads are skipped), so it is bounded by `max_objects`.
    Truncated or malformed input is left to msgpack, which raises its own error.
    """
    n = len(buf)
    pos = 0
    objects = 0
    max_objects, max_depth = limits.max_objects, limits.max_depth
    todo = [1]  # values still to read, per open container (the message itself is one value)
    while todo:
        if todo[-1] == 0:
            todo.pop()
            continue
        todo[-1] -= 1
        if pos >= n:
            return
        objects += 1
        if objects > max_objects:
            raise DecodeError(f"message holds more than {max_objects} msgpack values")
        kind, count, pos = _head(buf, pos)
        if kind == _SCALAR:
            continue
        if kind == _EXT:
            raise DecodeError(f"msgpack ext types are not accepted (byte 0x{buf[pos]:02x} at offset {pos})")
        if kind == _INVALID:
            return
        if len(todo) > max_depth:
            raise DecodeError(f"message is nested deeper than {max_depth} maps / lists")
        if count > max_objects:
            raise DecodeError(f"message holds more than {max_objects} msgpack values")
        todo.append(count)


def _field_name(path: list) -> str:
    return "/".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in path) or "<message>"


class _Found(Exception):
    pass


def _walk(buf, pos: int, path: list) -> int:
    """Top-down walk that checks every array / scalar map in the order the decoder's hooks see them (children
    first); raises `_Found` with the refused one's path. Returns the position after the value."""
    start = pos
    kind, count, pos = _head(buf, pos)
    if kind == _ARRAY:
        for i in range(count):
            pos = _walk(buf, pos, [*path, i])
    elif kind == _MAP:
        tagged = False
        for _ in range(count // 2):
            key_end = _head(buf, pos)[2]
            key = msgpack.unpackb(buf[pos:key_end])
            tagged = tagged or key in (b"__ndarray__", b"__npgeneric__")
            pos = _walk(buf, key_end, [*path, key])
        if tagged:
            try:
                _convert(msgpack.unpackb(buf[start:pos]), None)
            except _Refused as e:
                raise _Found(f"field '{_field_name(path)}': {e}") from None
    elif kind != _SCALAR:
        raise ValueError("not walkable")
    return pos


def _locate(message, error: _Refused) -> DecodeError:
    """The refused array's field, found by a top-down walk (only on the error path). Falls back to the bare text
    when the message cannot be walked (e.g. it is also truncated after the refused array, or deeply nested)."""
    try:
        _walk(message, 0, [])
    except _Found as found:
        return DecodeError(str(found))
    except Exception:  # any other trouble (IndexError, RecursionError, ...): the bare text below
        pass
    return DecodeError(str(error))


def _decode(message, limits: DecodeLimits, views: list | None = None, used: list | None = None):
    """msgpack's C decoder with hooks that rebuild (and check) arrays and track the nesting depth.

    Depth is computed bottom-up (the hooks see a container after its children): `heights` maps id(container) to
    (height, container) for containers above height 1, keeping them alive so an id cannot be reused meanwhile.
    """
    budget = [limits.max_arrays, limits.max_total_bytes, limits]
    max_depth = limits.max_depth
    heights: dict[int, tuple[int, object]] = {}

    def height_of(container, children) -> None:
        h = 0
        for child in children:
            if type(child) in _NESTED:
                if type(child) is msgpack.Timestamp:
                    raise DecodeError("msgpack ext types are not accepted (a timestamp)")
                entry = heights.get(id(child))
                c = entry[0] if entry else 1
                if c > h:
                    h = c
        if h:
            if h >= max_depth:
                raise DecodeError(f"message is nested deeper than {max_depth} maps / lists")
            heights[id(container)] = (h + 1, container)

    def list_hook(items):
        if not _NESTED.isdisjoint(map(type, items)):  # (a C loop: most lists hold only scalars)
            height_of(items, items)
        return items

    def object_hook(obj):
        if b"__ndarray__" in obj:
            if views is not None and type(data := obj.get(b"data")) is int:
                obj[b"data"] = views[data]
                used.append(data)
            return _array_of(obj, budget)
        if b"__npgeneric__" in obj:
            return _scalar_of(obj)
        if not _NESTED.isdisjoint(map(type, obj.values())):
            height_of(obj, obj.values())
        return obj

    out = msgpack.unpackb(message, object_hook=object_hook, list_hook=list_hook, ext_hook=_refuse_ext)
    if type(out) is msgpack.Timestamp:
        raise DecodeError("msgpack ext types are not accepted (a timestamp)")
    return out


_NESTED = frozenset((dict, list, msgpack.Timestamp))


def _refuse_ext(code, data):
    raise DecodeError(f"msgpack ext types are not accepted (ext type {code})")


SCAN_ABOVE_BYTES = 1 << 16
"""Messages up to this size (or `max_objects`) cannot hold enough values to matter (each value takes >= 1 byte), so
they skip the header walk; the hooks bound the depth of every message."""


def _needs_scan(message, limits: DecodeLimits) -> bool:
    return len(message) > min(SCAN_ABOVE_BYTES, limits.max_objects)


def unpackb(message, *, limits: DecodeLimits = DEFAULT_LIMITS):
    """Decode one message, checking every array, scalar and the limits (see the module doc)."""
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise DecodeError(f"a message must be bytes, got {type(message).__name__}")
    if _needs_scan(message, limits):
        _check_structure(message, limits)
    return _unpackb_checked(message, limits)


def _unpackb_checked(message, limits: DecodeLimits):
    try:
        return _decode(message, limits)
    except _Refused as e:
        raise _locate(message, e) from None


# --- Zero-copy decode (the server's requests) -----------------------------------------------------------------------

ZERO_COPY_MIN_BYTES = 1 << 16
"""Arrays of at least this many bytes are decoded as views of the message; smaller ones are cheaper to copy."""

# An upstream ndarray map starts with these bytes when its data is a bin32 (>= 64 kB): fixmap(4), the key
# `__ndarray__` (bin8), True, the key `data` (bin8), then the bin32 header of the data.
_NDARRAY_BIN32 = b"\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc6"


def unpackb_views(message, *, limits: DecodeLimits = DEFAULT_LIMITS):
    """`unpackb` whose large arrays are read-only views into `message` instead of copies of it.

    Same values and the same checks as `unpackb` for every input (errors included). Only an immutable `bytes`
    message is viewed; anything else is decoded by `unpackb`. Each large array keeps the whole message alive while it
    is referenced. How: the bin32 payloads of upstream-layout ndarray maps are located by their fixed header bytes,
    cut out, and replaced by a small index; msgpack decodes the remaining few hundred bytes, and the object hook puts
    the views in (through the same checks). Any inconsistency (e.g. the header bytes occurring inside some other
    field) falls back to `unpackb`.
    """
    if type(message) is not bytes or len(message) < ZERO_COPY_MIN_BYTES:
        return unpackb(message, limits=limits)
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
        return unpackb(message, limits=limits)
    pieces.append(message[start:])
    small = b"".join(pieces)  # the same msgpack values as the message, minus the large arrays' payloads
    whole = memoryview(message)
    views = [whole[offset : offset + n] for offset, n in spans]
    used: list[int] = []
    try:
        if _needs_scan(small, limits):
            _check_structure(small, limits)
        out = _decode(small, limits, views, used)
    except Exception:
        return unpackb(message, limits=limits)  # raises the real error (naming the field) if the message is bad
    if used != list(range(len(spans))):  # an index was not where an array's data was: not the layout we assumed
        return unpackb(message, limits=limits)
    return out
