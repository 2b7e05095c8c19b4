"""The decoder trusts nothing: every refused class of array / scalar / structure gets a DecodeError naming the field,
on the plain path (`unpackb`, the client's replies) and the zero-copy path (`unpackb_views`, the server's requests)."""

import re

import msgpack
import numpy as np
import pytest

from openpi_client import msgpack_numpy as mn

BIG = np.zeros(1 << 17, np.uint8)  # makes a message take the zero-copy path


def _nd(dtype, shape, data):
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def _gen(dtype, value):
    return {b"__npgeneric__": True, b"data": value, b"dtype": dtype}


def _both(obj, **kwargs):
    """Decode a hand-built message on both paths; both must refuse it the same way. Returns the error text."""
    texts = []
    for message, decode in (
        (msgpack.packb(obj), mn.unpackb),
        (msgpack.packb({"pad": mn.pack_array(BIG), "x": obj}), mn.unpackb_views),
    ):
        with pytest.raises(mn.DecodeError) as info:
            decode(message, **kwargs)
        texts.append(str(info.value))
    return texts[0]


REFUSED_DTYPES = {
    "|O": "object dtype",
    "|O8": "object dtype",
    "|V4": "void / structured dtype",
    "<c8": "complex dtype",
    "<c16": "complex dtype",
    "<U4": "string dtype",
    "|S4": "bytes dtype",
    "<M8[s]": "datetime dtype",
    "<m8[us]": "timedelta dtype",
    "<f16": "not an accepted dtype",  # long double: platform-dependent layout
    "<i16": "not an accepted dtype",
    "float32": "not an accepted dtype",  # names are not what upstream's packer writes
    "i4,i4": "not an accepted dtype",  # structured, in the comma form
    "": "not an accepted dtype",
}


@pytest.mark.parametrize("dtype", list(REFUSED_DTYPES))
def test_refused_dtypes_name_the_field(dtype):
    text = _both({"obs": {"state": _nd(dtype, [2], b"\x00" * 8)}})
    assert REFUSED_DTYPES[dtype] in text
    assert "field 'obs/state'" in text or "field 'x/obs/state'" in text
    text = _both({"s": _gen(dtype, 1)})
    assert REFUSED_DTYPES[dtype] in text


def test_structured_dtype_descriptions_are_refused():
    for spec in ([["a", "<i4"]], {"names": ["a"], "formats": ["<i4"]}, 7, None):
        assert "dtype must be a dtype string" in _both({"a": _nd(spec, [1], b"\x00" * 4)})


@pytest.mark.parametrize(
    ("shape", "data", "message"),
    [
        ([3], b"\x00" * 11, "data is 11 bytes but shape [3] of dtype <f4 needs 12 bytes"),
        ([3], b"\x00" * 13, "data is 13 bytes but shape [3] of dtype <f4 needs 12 bytes"),
        ([1 << 31, 1 << 31], b"\x00" * 4, "needs 18446744073709551616 bytes"),
        ([1 << 40, 0], b"", "is empty but its other axes are too long"),  # .tolist() would never end
        ([-1], b"", "shape must be a list"),
        ([True], b"\x00" * 4, "shape must be a list"),
        ([1.0], b"\x00" * 4, "shape must be a list"),
        ("3", b"\x00" * 12, "shape must be a list"),
        (None, b"\x00" * 12, "shape must be a list"),
        ([1] * 33, b"\x00" * 4, "at most 32"),
        ([3], "text" * 3, "data must be msgpack bin"),
        ([3], 12, "data must be msgpack bin"),
        ([3], None, "data must be msgpack bin"),
    ],
)
def test_shape_and_data_length_checks(shape, data, message):
    assert message in _both({"state": _nd("<f4", shape, data)})


def test_missing_keys_and_bool_bytes():
    assert "dtype must be a dtype string" in _both({"a": {b"__ndarray__": True, b"data": b"", b"shape": [0]}})
    assert "shape must be a list" in _both({"a": {b"__ndarray__": True, b"data": b"", b"dtype": "<f4"}})
    assert "bool data must hold only 0 and 1" in _both({"mask": _nd("|b1", [3], b"\x01\x00\x02")})


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        ("|b1", 1, "must carry a bool"),
        ("<i8", True, "must carry an int"),
        ("|i1", 128, "in [-128, 127]"),
        ("|u1", -1, "in [0, 255]"),
        ("<u8", 1.5, "must carry an int"),
        ("<f4", "1.0", "must carry a float"),
        ("<f4", None, "must carry a float"),
        ("<f4", [1.0], "must carry a float"),
    ],
)
def test_npgeneric_values_must_fit_their_dtype(dtype, value, message):
    assert message in _both({"v": _gen(dtype, value)})


def test_accepted_forms_decode_like_upstream():
    data = np.arange(6, dtype=">i2")
    obj = {
        "be": _nd(">i2", [2, 3], data.tobytes()),
        "native": _nd("=f4", [1], np.float32(2.5).tobytes()),
        "pipe": _nd("|u1", [2], b"\x01\x02"),
        "bool": _nd("<b1", [2], b"\x01\x00"),
        "bin_dtype": _nd(b"<f8", [], np.float64(3).tobytes()),
        "half": _nd("<f2", [0, 7], b""),
        "scalars": [_gen("<f4", 1), _gen("|b1", False), _gen("<u8", (1 << 64) - 1), _gen("<i8", -(1 << 63))],
    }
    out = mn.unpackb(msgpack.packb(obj))
    np.testing.assert_array_equal(out["be"], data.reshape(2, 3))
    assert out["be"].dtype == np.dtype(">i2") and out["native"].dtype == np.float32
    assert out["bool"].tolist() == [True, False] and out["bin_dtype"] == 3.0 and out["half"].shape == (0, 7)
    assert [type(x) for x in out["scalars"]] == [np.float32, np.bool_, np.uint64, np.int64]


def test_structure_limits():
    deep = []
    for _ in range(40):
        deep = [deep]
    assert "nested deeper than 32" in _both({"d": deep})
    mn.unpackb(msgpack.packb(deep), limits=mn.DecodeLimits(max_depth=41))
    assert "more than 100 msgpack values" in _both({"l": list(range(200))}, limits=mn.DecodeLimits(max_objects=100))
    # A declared length far beyond the message is refused before anything is allocated (by msgpack itself for a
    # small message, by the header walk for a large one).
    with pytest.raises(ValueError, match="exceeds max_array_len"):
        mn.unpackb(b"\xdd\xff\xff\xff\xff" + b"\x90" * 10)
    with pytest.raises(mn.DecodeError, match="more than 262144 msgpack values"):
        mn.unpackb(b"\xdd\xff\xff\xff\xff" + b"\x90" * 100_000)
    with pytest.raises(mn.DecodeError, match="more than 262144 msgpack values"):
        mn.unpackb(msgpack.packb([[]] * 300_000))
    many = {str(i): mn.pack_array(np.zeros(1, np.float32)) for i in range(5)}
    assert "more than 4 arrays" in _both(many, limits=mn.DecodeLimits(max_arrays=4))
    with pytest.raises(mn.DecodeError, match="more than 1000 bytes of array data"):
        mn.unpackb(
            mn.packb({"a": np.zeros(600, np.uint8), "b": np.zeros(600, np.uint8)}),
            limits=mn.DecodeLimits(max_total_bytes=1000),
        )
    with pytest.raises(mn.DecodeError, match="more than 1000 bytes of array data"):
        mn.unpackb_views(mn.packb({"a": BIG}), limits=mn.DecodeLimits(max_total_bytes=1000))


def test_ext_types_and_non_bytes_are_refused():
    assert "ext types are not accepted" in _both({"t": msgpack.ExtType(5, b"abc")})
    assert "ext types are not accepted" in _both({"t": msgpack.Timestamp(1, 0)})
    for bad in ("text", None, 3, [b"x"]):
        with pytest.raises(mn.DecodeError, match="must be bytes"):
            mn.unpackb(bad)


def test_field_names_through_lists_and_nested_maps():
    obs = {"images": {"cam_high": _nd("|O", [1], b"\x00" * 8)}, "ok": 1}
    assert _both(obs).startswith("field 'images/cam_high': dtype '|O' is an object dtype")
    assert "field 'chunks/2'" in _both({"chunks": [1, 2, _nd("<c8", [1], b"\x00" * 8)]})
    with pytest.raises(mn.DecodeError, match=re.escape("field '<message>': dtype '|O' is an object dtype")):
        mn.unpackb(msgpack.packb(_nd("|O", [1], b"\x00" * 8)))


def test_the_zero_copy_path_checks_the_viewed_arrays():
    """A large array in upstream's exact layout (the one the zero-copy path views) gets the same checks."""
    n = 1 << 17
    for dtype, message in (("|O", "object dtype"), ("<U4", "string dtype"), ("<f4", "needs 524288 bytes")):
        packed = msgpack.packb({"img": _nd(dtype, [n], b"\x00" * n)})
        assert packed.find(b"\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc6") >= 0
        with pytest.raises(mn.DecodeError, match=f"field 'img': .*{re.escape(message)}"):
            mn.unpackb_views(packed)
    good = mn.packb({"img": BIG, "mask": np.ones(3, bool)})
    out = mn.unpackb_views(good)
    assert np.shares_memory(out["img"], np.frombuffer(good, np.uint8))
