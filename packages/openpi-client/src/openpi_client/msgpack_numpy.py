"""msgpack with numpy arrays, byte-compatible with upstream openpi's wire format.

An ndarray is packed as a map with *bin* keys `__ndarray__`, `data` (C-order bytes), `dtype` (`dtype.str`) and
`shape`; a numpy scalar that is not a Python float/str subclass as `{__npgeneric__, data: .item(), dtype}`.
Object, void and complex dtypes are refused (they cannot be rebuilt safely from bytes).
"""

import functools

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
