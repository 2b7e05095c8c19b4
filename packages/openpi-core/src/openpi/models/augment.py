"""Training-time image augmentation in pure JAX (upstream uses augmax with the same recipe).

Non-wrist cameras: random crop to 95% + resize back + rotation in [-5, 5] degrees. All cameras: color jitter
(brightness 0.3, contrast 0.4, saturation 0.5). Images are float in [-1, 1], [B,H,W,3].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _crop_resize_rotate(rng, img):
    h, w = img.shape[:2]
    k1, k2, k3 = jax.random.split(rng, 3)
    ch, cw = int(h * 0.95), int(w * 0.95)
    y0 = jax.random.randint(k1, (), 0, h - ch + 1)
    x0 = jax.random.randint(k2, (), 0, w - cw + 1)
    angle = jax.random.uniform(k3, (), minval=-5.0, maxval=5.0) * jnp.pi / 180
    # Output pixel (i, j) samples the crop at the rotated, rescaled coordinate.
    ii, jj = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    ci, cj = (h - 1) / 2, (w - 1) / 2
    ri = jnp.cos(angle) * (ii - ci) - jnp.sin(angle) * (jj - cj) + ci
    rj = jnp.sin(angle) * (ii - ci) + jnp.cos(angle) * (jj - cj) + cj
    si = y0 + ri * (ch - 1) / (h - 1)
    sj = x0 + rj * (cw - 1) / (w - 1)
    chans = [jax.scipy.ndimage.map_coordinates(img[..., c], [si, sj], order=1, mode="nearest") for c in range(3)]
    return jnp.stack(chans, axis=-1)


def _color_jitter(rng, img):
    kb, kc, ks = jax.random.split(rng, 3)
    x = (img + 1) / 2
    x = x * jax.random.uniform(kb, (), minval=0.7, maxval=1.3)
    gray = jnp.mean(x, axis=(-3, -2, -1), keepdims=True)
    x = (x - gray) * jax.random.uniform(kc, (), minval=0.6, maxval=1.4) + gray
    lum = jnp.sum(x * jnp.asarray([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    x = (x - lum) * jax.random.uniform(ks, (), minval=0.5, maxval=1.5) + lum
    return jnp.clip(x, 0, 1) * 2 - 1


def augment_image(rng, images, *, wrist: bool):
    keys = jax.random.split(rng, images.shape[0])

    def one(key, img):
        k1, k2 = jax.random.split(key)
        if not wrist:
            img = _crop_resize_rotate(k1, img)
        return _color_jitter(k2, img)

    return jax.vmap(one)(keys, images.astype(jnp.float32))
