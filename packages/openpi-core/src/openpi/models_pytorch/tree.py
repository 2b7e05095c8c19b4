"""A torch module whose attributes mirror a nested dict of tensors (same layout as the JAX param tree)."""

from __future__ import annotations

import torch
from torch import nn


class TensorTree(nn.Module):
    def __init__(self, tree: dict):
        super().__init__()
        for key, value in tree.items():
            if isinstance(value, dict):
                self.add_module(key, TensorTree(value))
            else:
                self.register_parameter(key, nn.Parameter(torch.as_tensor(value, dtype=torch.float32).clone()))

    def values(self) -> dict:
        out = {name: p for name, p in self.named_parameters(recurse=False)}
        for name, child in self.named_children():
            out[name] = child.values()
        return out


def shapes_to_zeros(tree: dict) -> dict:
    return {k: shapes_to_zeros(v) if isinstance(v, dict) else torch.zeros(tuple(v.shape)) for k, v in tree.items()}
