"""Torch twin of openpi.models.siglip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def layer_norm(x, p, eps=1e-6):
    xf = x.float()
    mean = xf.mean(-1, keepdim=True)
    var = torch.clamp(xf.square().mean(-1, keepdim=True) - mean.square(), min=0.0)
    y = (xf - mean) * torch.rsqrt(var + eps)
    return (y * p["scale"].float() + p["bias"].float()).to(x.dtype)


def forward(params: dict, image: torch.Tensor, *, dtype=torch.float32) -> torch.Tensor:
    """image [B,H,W,3] (or [B,3,H,W]) float in [-1,1] -> tokens [B, N, num_classes]."""
    if image.shape[1] == 3 and image.shape[-1] != 3:
        image = image.permute(0, 2, 3, 1)
    e = params["embedding"]
    kernel = e["kernel"].float().permute(3, 2, 0, 1)  # HWIO -> OIHW
    patch = kernel.shape[-1]
    x = F.conv2d(image.float().permute(0, 3, 1, 2), kernel, e["bias"].float(), stride=patch)
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(b, h * w, c) + params["pos_embedding"].float()
    x = x.to(dtype)
    blocks = params["Transformer"]["encoderblock"]
    depth = blocks["LayerNorm_0"]["scale"].shape[0]
    for i in range(depth):
        p = _index(blocks, i)
        y = layer_norm(x, p["LayerNorm_0"])
        a = p["MultiHeadDotProductAttention_0"]
        q, k, v = (
            torch.einsum("btd,dnh->btnh", y, a[n]["kernel"].to(dtype)) + a[n]["bias"].to(dtype)
            for n in ("query", "key", "value")
        )
        q = q / torch.sqrt(torch.tensor(q.shape[-1], dtype=dtype, device=q.device))
        probs = torch.softmax(torch.einsum("btnh,bsnh->bnts", q.float(), k.float()), dim=-1).to(dtype)
        o = torch.einsum("bnts,bsnh->btnh", probs, v)
        x = x + torch.einsum("btnh,nhd->btd", o, a["out"]["kernel"].to(dtype)) + a["out"]["bias"].to(dtype)
        y = layer_norm(x, p["LayerNorm_1"])
        m = p["MlpBlock_0"]
        hdn = F.gelu(y @ m["Dense_0"]["kernel"].to(dtype) + m["Dense_0"]["bias"].to(dtype), approximate="tanh")
        x = x + hdn @ m["Dense_1"]["kernel"].to(dtype) + m["Dense_1"]["bias"].to(dtype)
    x = layer_norm(x, params["Transformer"]["encoder_norm"])
    return x @ params["head"]["kernel"].to(dtype) + params["head"]["bias"].to(dtype)


def _index(tree: dict, i: int) -> dict:
    return {k: _index(v, i) if isinstance(v, dict) else v[i] for k, v in tree.items()}
