"""The server's zero-copy request decode: unpackb_views gives exactly unpackb's values (and errors), shares memory
where it should, and falls back safely on inputs that defeat the shortcut."""

import base64
import json

import msgpack
import numpy as np
import pytest

from openpi_client import msgpack_numpy as mn


def _same(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert type(a) is type(b) and (a == b or (a != a and b != b))


def _arrays(obj):
    """Every ndarray in a nested dict/list, in packing order."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _arrays(v)


def _observations():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
    return {
        "typical": {"state": rng.normal(size=14).astype(np.float32), "images": {"a": img, "b": img + 1}, "p": "x"},
        "many_dtypes": {
            "f64": rng.normal(size=(100, 100)),
            "i16": np.arange(40_000, dtype=">i2"),
            "bool": np.ones(70_000, bool),
            "f16": np.zeros((256, 256), np.float16),
        },
        "edge_sizes": {
            "at": np.zeros(1 << 16, np.uint8),
            "below": np.zeros((1 << 16) - 1, np.uint8),
            "empty": np.zeros(0),
        },
        "non_contiguous": {"t": img.transpose(1, 0, 2), "slice": img[::2], "scalar": np.float32(1.5), "n": None},
        "big_user_bytes": {"jpeg": bytes(range(256)) * 400, "img": img, "list": [img, 3, "s"]},
        "top_level_array": img,
    }


@pytest.mark.parametrize("name", list(_observations()))
def test_unpackb_views_equals_unpackb_and_views_the_message(name):
    message = mn.packb(_observations()[name])
    out = mn.unpackb_views(message)
    _same(out, mn.unpackb(message))
    whole = np.frombuffer(message, np.uint8)
    arrays = list(_arrays(out))
    assert arrays
    for a in arrays:
        assert not a.flags.writeable
        assert np.shares_memory(a, whole) == (a.nbytes >= 1 << 16)


def test_unpackb_views_golden_cases(golden_dir):
    from test_client_wire import REFUSED_GOLDEN_CASES
    from test_client_wire import check_decoded

    cases = json.loads((golden_dir / "msgpack_cases.json").read_text())
    for case in cases["cases"]:
        packed = base64.b64decode(case["packed_b64"])
        if case["name"] in REFUSED_GOLDEN_CASES:
            with pytest.raises(mn.DecodeError, match=REFUSED_GOLDEN_CASES[case["name"]]):
                mn.unpackb_views(packed)
            continue
        check_decoded(mn.unpackb_views(packed), case["decoded"])


def test_unpackb_views_is_not_fooled_by_the_header_bytes_inside_other_fields(monkeypatch):
    sig = b"\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc6"
    img = np.arange(1 << 17, dtype=np.uint8)
    # The ndarray header bytes with a plausible large length inside user bytes fields, before and after a real
    # array. (A msgpack str cannot contain them: 0xc4 0x0b is not UTF-8.)
    fake = b"junk" + sig + (1 << 16).to_bytes(4, "big") + b"\x00" * (1 << 16) + b"tail"
    fallbacks = []
    plain = mn._unpackb_checked
    monkeypatch.setattr(mn, "_unpackb_checked", lambda m, limits: fallbacks.append(1) or plain(m, limits))
    for obj in (
        {"blob": fake, "img": img},
        {"img": img, "blob": fake},
        {"list": [fake, img, fake]},
        {"blob": sig + (1 << 20).to_bytes(4, "big")},  # the length runs past the end of the message
    ):
        fallbacks.clear()
        message = mn.packb(obj)
        _same(mn.unpackb_views(message), obj)
        assert fallbacks == [1]  # the shortcut noticed and handed the message to the plain decoder
    fallbacks.clear()
    _same(mn.unpackb_views(mn.packb({"img": img})), {"img": img})
    assert fallbacks == []  # and without such bytes it is taken


def test_unpackb_views_errors_and_mutable_inputs():
    message = mn.packb({"img": np.zeros(1 << 17, np.uint8), "s": "x"})
    truncated, extra = "Unpack failed: incomplete input", r"unpack\(b\) received extra data"
    for bad, error in (
        (message[:-1], truncated),
        (message[: len(message) // 2], truncated),
        (message + b"\xc0", extra),
    ):
        with pytest.raises(ValueError, match=error) as views_error:
            mn.unpackb_views(bad)
        with pytest.raises(ValueError, match=error) as plain_error:
            mn.unpackb(bad)
        assert type(views_error.value) is type(plain_error.value)
    buf = bytearray(message)  # mutable: decoded by copying, later writes do not show through
    out = mn.unpackb_views(buf)
    buf[-200:] = b"\xff" * 200
    assert not np.shares_memory(out["img"], np.frombuffer(buf, np.uint8)) and out["img"].max() == 0


def test_hand_built_layouts_other_than_upstreams_decode_the_same():
    data = np.arange(1 << 16, dtype=np.uint16)
    # data before __ndarray__, and a 5-key map: the shortcut does not apply, values must still match.
    reordered = msgpack.packb(
        {b"data": data.tobytes(), b"__ndarray__": True, b"dtype": "<u2", b"shape": [1 << 16]}, use_bin_type=True
    )
    got = mn.unpackb_views(reordered)
    np.testing.assert_array_equal(got, data)
