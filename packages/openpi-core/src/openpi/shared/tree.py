"""A tiny framework-neutral tree map (dicts, lists, tuples, dataclasses such as `Observation`; None stays None), for
the code paths that must not import jax (PyTorch serving and training)."""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from typing import Any


def tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(tree_map(fn, v) for v in tree)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return dataclasses.replace(
            tree, **{f.name: tree_map(fn, getattr(tree, f.name)) for f in dataclasses.fields(tree) if f.init}
        )
    return fn(tree)
