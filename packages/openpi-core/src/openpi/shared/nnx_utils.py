"""Small flax.nnx helpers."""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class PathRegex:
    """nnx filter matching params whose '/'-joined path fully matches `pattern`."""

    pattern: str

    def __call__(self, path, value) -> bool:
        return re.fullmatch(self.pattern, "/".join(str(p) for p in path)) is not None
