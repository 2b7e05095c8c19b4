"""Streaming safetensors reader / writer (the file format of the `safetensors` package, byte for byte compatible).

Why not `safetensors.torch`: reading goes through mmap, so every page read stays in the process's RSS as a file
page next to the tensor copied out of it (2x the file at peak); `save_file` needs every tensor in memory, including
the 1 GB of zeros upstream's layout wants for the expert's unused `lm_head`. Here each tensor is read with
`readinto` straight into its own buffer (peak = the tensors themselves) and written one at a time (zeros in chunks).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import struct

import torch

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


@dataclasses.dataclass(frozen=True)
class Zeros:
    """A tensor of zeros written without being allocated."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n * torch.empty((), dtype=self.dtype).element_size()


def _nbytes(t) -> int:
    return t.nbytes() if isinstance(t, Zeros) else t.numel() * t.element_size()


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict], dict[str, str], int]:
    """-> ({name: {"dtype", "shape", "data_offsets"}}, metadata, start of the data section)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {}) or {}
    return header, meta, 8 + n


class Reader:
    """`with Reader(path) as r: r.keys(), r.shape(k), r.get(k)` (each `get` reads one tensor from disk)."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.header, self.metadata, self._start = read_header(self.path)
        self._f = None

    def __enter__(self) -> Reader:
        self._f = open(self.path, "rb")  # closed in __exit__
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()

    def keys(self) -> list[str]:
        return list(self.header)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.header[key]["shape"])

    def dtype(self, key: str) -> torch.dtype:
        return DTYPES[self.header[key]["dtype"]]

    def get(self, key: str) -> torch.Tensor:
        info = self.header[key]
        begin, end = info["data_offsets"]
        t = torch.empty(self.shape(key), dtype=self.dtype(key))
        if end > begin:
            buf = t.reshape(-1).view(torch.uint8).numpy()
            self._f.seek(self._start + begin)
            if self._f.readinto(buf) != end - begin:
                raise OSError(f"{self.path}: truncated data for {key}")
        return t


def write(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> pathlib.Path:
    """Write `tensors` (torch tensors or `Zeros`) atomically (tmp file + rename)."""
    path = pathlib.Path(path)
    header: dict = {}
    offset = 0
    for name, t in tensors.items():
        n = _nbytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    if metadata:
        header["__metadata__"] = dict(metadata)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors.values():
            if isinstance(t, Zeros):
                left, chunk = t.nbytes(), bytes(1 << 24)
                while left:
                    f.write(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))
            elif t.numel():
                f.write(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
    os.replace(tmp, path)
    return path
