"""Client-side image helpers (PIL), identical to upstream openpi_client.image_tools."""

import numpy as np
from PIL import Image


def convert_to_uint8(img: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8 (255 * x, truncated); other dtypes pass through."""
    if np.issubdtype(img.dtype, np.floating):
        img = (255 * img).astype(np.uint8)
    return img


def resize_with_pad(images: np.ndarray, height: int, width: int, method=Image.BILINEAR) -> np.ndarray:
    """Resize [..., H, W, C] images to (height, width) keeping the aspect ratio, padding with black (centred)."""
    if images.shape[-3:-1] == (height, width):
        return images
    original_shape = images.shape
    flat = images.reshape(-1, *original_shape[-3:])
    out = np.stack([_resize_one(Image.fromarray(im), height, width, method) for im in flat])
    return out.reshape(*original_shape[:-3], *out.shape[-3:])


def _resize_one(image: Image.Image, height: int, width: int, method) -> np.ndarray:
    cur_w, cur_h = image.size
    if (cur_w, cur_h) == (width, height):
        return np.asarray(image)
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = image.resize((new_w, new_h), resample=method)
    canvas = Image.new(resized.mode, (width, height), 0)
    canvas.paste(resized, (int((width - new_w) / 2), int((height - new_h) / 2)))
    return np.asarray(canvas)
