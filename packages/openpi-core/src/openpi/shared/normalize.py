"""Normalization statistics: running computation, and the `norm_stats.json` format of upstream openpi.

`RunningStats` reproduces upstream's numbers exactly, including its numpy-1.x behaviour: histogram bin edges are
float64 (`float32_min - 1e-10` promoted to float64), so the first re-binning (when a later batch extends any dim's
range) drops the lowest bin of every dim whose min did not decrease. Official `norm_stats.json` files were made this
way; we compute the edges explicitly in float64 so the result does not depend on the installed numpy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import numpy as np

NUM_QUANTILE_BINS = 5000


@dataclasses.dataclass
class NormStats:
    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None


class RunningStats:
    """Mean / std over [..., D] batches plus q01 / q99 from 5000-bin per-dim histograms."""

    def __init__(self):
        self._count = 0
        self._mean = None
        self._mean_of_squares = None
        self._min = None
        self._max = None
        self._histograms = None
        self._bin_edges = None

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch)
        batch = batch.reshape(-1, batch.shape[-1])
        n, dim = batch.shape
        if self._count == 0:
            self._mean = np.mean(batch, axis=0)
            self._mean_of_squares = np.mean(batch**2, axis=0)
            self._min = np.min(batch, axis=0)
            self._max = np.max(batch, axis=0)
            self._histograms = [np.zeros(NUM_QUANTILE_BINS) for _ in range(dim)]
            self._bin_edges = [
                np.linspace(np.float64(self._min[i]) - 1e-10, np.float64(self._max[i]) + 1e-10, NUM_QUANTILE_BINS + 1)
                for i in range(dim)
            ]
        else:
            if dim != self._mean.size:
                raise ValueError(f"batch has {dim} dims but the stats were started with {self._mean.size}")
            new_max, new_min = np.max(batch, axis=0), np.min(batch, axis=0)
            changed = bool(np.any(new_max > self._max) or np.any(new_min < self._min))
            self._max = np.maximum(self._max, new_max)
            self._min = np.minimum(self._min, new_min)
            if changed:
                self._rebin()
        self._count += n
        self._mean += (np.mean(batch, axis=0) - self._mean) * (n / self._count)
        self._mean_of_squares += (np.mean(batch**2, axis=0) - self._mean_of_squares) * (n / self._count)
        for i in range(dim):
            hist, _ = np.histogram(batch[:, i], bins=self._bin_edges[i])
            self._histograms[i] += hist

    def _rebin(self) -> None:
        for i in range(len(self._histograms)):
            new_edges = np.linspace(np.float64(self._min[i]), np.float64(self._max[i]), NUM_QUANTILE_BINS + 1)
            # Old bins are represented by their left edge; those below the new min fall out (upstream behaviour).
            self._histograms[i], _ = np.histogram(self._bin_edges[i][:-1], bins=new_edges, weights=self._histograms[i])
            self._bin_edges[i] = new_edges

    def get_statistics(self) -> NormStats:
        if self._count < 2:
            raise ValueError("Cannot compute statistics for less than 2 vectors.")
        std = np.sqrt(np.maximum(0, self._mean_of_squares - self._mean**2))
        q01, q99 = (self._quantile(q) for q in (0.01, 0.99))
        return NormStats(mean=self._mean, std=std, q01=q01, q99=q99)

    def _quantile(self, q: float) -> np.ndarray:
        target = q * self._count
        return np.array(
            [
                edges[np.searchsorted(np.cumsum(hist), target)]
                for hist, edges in zip(self._histograms, self._bin_edges, strict=True)
            ]
        )


# ------------------------------------------------------------------------------------------------------ file format


def _fmt_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"norm stats contain {x}; check the dataset for NaN/inf values")
    r = repr(float(x))
    if "e" in r:  # pydantic / serde_json style exponent: 1e-05 -> 1e-5
        mant, exp = r.split("e")
        r = f"{mant}e{int(exp)}"
    return r


def _array_json(values, indent: str) -> str:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        return "[]"
    inner = indent + "  "
    return "[\n" + ",\n".join(inner + _fmt_float(v) for v in arr.tolist()) + "\n" + indent + "]"


def serialize_json(norm_stats: dict[str, NormStats]) -> str:
    """Byte-identical to upstream's pydantic `model_dump_json(indent=2)` (no trailing newline)."""
    lines = ["{", '  "norm_stats": {']
    items = list(norm_stats.items())
    for j, (key, stats) in enumerate(items):
        fields = [(f.name, getattr(stats, f.name)) for f in dataclasses.fields(NormStats)]
        body = []
        for name, value in fields:
            body.append(f'      "{name}": ' + ("null" if value is None else _array_json(value, "      ")))
        lines.append(f'    "{key}": {{')
        lines.append(",\n".join(body))
        lines.append("    }" + ("," if j < len(items) - 1 else ""))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines)


def deserialize_json(data: str) -> dict[str, NormStats]:
    raw = json.loads(data)
    if "norm_stats" not in raw:
        raise ValueError("not a norm_stats.json file: missing the top-level 'norm_stats' key")
    out = {}
    for key, s in raw["norm_stats"].items():
        out[key] = NormStats(
            mean=np.asarray(s["mean"]),
            std=np.asarray(s["std"]),
            q01=None if s.get("q01") is None else np.asarray(s["q01"]),
            q99=None if s.get("q99") is None else np.asarray(s["q99"]),
        )
    return out


def save(directory: str | os.PathLike, norm_stats: dict[str, NormStats]) -> pathlib.Path:
    """Write `<directory>/norm_stats.json` atomically."""
    path = pathlib.Path(directory) / "norm_stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(serialize_json(norm_stats))
    os.replace(tmp, path)
    return path


def load(directory: str | os.PathLike) -> dict[str, NormStats]:
    from openpi.shared import download

    path = pathlib.Path(download.maybe_download(str(directory))) / "norm_stats.json"
    if not path.exists():
        raise FileNotFoundError(f"Norm stats file not found at: {path}")
    return deserialize_json(path.read_text())
