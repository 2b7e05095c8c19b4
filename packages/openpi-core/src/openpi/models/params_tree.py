"""An nnx module whose attributes mirror a nested dict of arrays.

The models keep their weights in exactly upstream openpi's parameter tree (e.g.
`PaliGemma/llm/layers/attn/q_einsum/w`, layer axis stacked first) so that official orbax checkpoints load by name.
The math is written as pure functions over the dict returned by `values()`.
"""

from __future__ import annotations

from flax import nnx
import jax


class ParamTree(nnx.Module):
    def __init__(self, tree: dict):
        self._keys = tuple(tree)
        for key, value in tree.items():
            setattr(self, key, ParamTree(value) if isinstance(value, dict) else nnx.Param(value))

    def values(self) -> dict:
        out = {}
        for key in self._keys:
            v = getattr(self, key)
            out[key] = v.values() if isinstance(v, ParamTree) else v.value
        return out


def init_normal(key, shape, std, dtype=jax.numpy.float32):
    return jax.random.normal(key, shape, dtype) * std


def lecun_normal(key, shape, fan_in, dtype=jax.numpy.float32):
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * (1.0 / fan_in) ** 0.5 / 0.87962566103423978
