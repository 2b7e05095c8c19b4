"""Server-side image resizing (JAX), matching upstream openpi.shared.image_tools.resize_with_pad."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def resize_with_pad(images, height: int, width: int, method: str = "linear"):
    """Resize [..., H, W, C] keeping the aspect ratio and pad to (height, width).

    uint8 images are rounded/clipped and padded with 0; float images are clipped to [-1, 1] and padded with -1.
    The padding is split with divmod: the remainder goes to the bottom / right.
    """
    has_batch = images.ndim == 4
    if not has_batch:
        images = images[None]
    cur_h, cur_w = images.shape[1:3]
    if (cur_h, cur_w) == (height, width):
        return images if has_batch else images[0]
    ratio = max(cur_w / width, cur_h / height)
    rh, rw = int(cur_h / ratio), int(cur_w / ratio)
    resized = jax.image.resize(images, (images.shape[0], rh, rw, images.shape[3]), method=method, antialias=True)
    if images.dtype == jnp.uint8:
        resized = jnp.round(resized).clip(0, 255).astype(jnp.uint8)
        fill = 0
    elif jnp.issubdtype(images.dtype, jnp.floating):
        resized = resized.clip(-1.0, 1.0)
        fill = -1.0
    else:
        raise ValueError(f"unsupported image dtype {images.dtype}; use uint8 or float")
    pad_h0, rem_h = divmod(height - rh, 2)
    pad_w0, rem_w = divmod(width - rw, 2)
    padded = jnp.pad(
        resized, ((0, 0), (pad_h0, pad_h0 + rem_h), (pad_w0, pad_w0 + rem_w), (0, 0)), constant_values=fill
    )
    return padded if has_batch else padded[0]
