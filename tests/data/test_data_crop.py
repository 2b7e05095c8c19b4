"""The table crop of the pixel ALOHA-sim recipe: `transforms.CropImages` through the config's input transforms."""

import numpy as np
import pytest

from openpi import transforms
from openpi.training import config as _config


def _ramp(h: int, w: int) -> np.ndarray:
    """[h, w, 3] uint8 image whose pixel (r, c) is (r, c, 7)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(h)[:, None]
    img[..., 1] = np.arange(w)[None, :]
    img[..., 2] = 7
    return img


def test_crop_takes_the_fractional_box():
    out = transforms.CropImages((0.2, 0.15, 0.8, 0.85))({"image": {"base_0_rgb": _ramp(120, 160)}})
    img = out["image"]["base_0_rgb"]
    assert img.shape == (72, 112, 3)
    assert (img[0, 0, 0], img[0, 0, 1]) == (24, 24)  # top-left = (0.2 * 120, 0.15 * 160)
    assert (img[-1, -1, 0], img[-1, -1, 1]) == (95, 135)


@pytest.mark.parametrize("box", [(0.5, 0.0, 0.5, 1.0), (0.0, 0.9, 1.0, 0.2), (-0.1, 0.0, 1.0, 1.0), (0, 0, 1, 1.5)])
def test_crop_rejects_a_bad_box(box):
    with pytest.raises(ValueError, match="crop box"):
        transforms.CropImages(box)


def test_crop_names_a_missing_camera():
    with pytest.raises(ValueError, match="left_wrist_0_rgb"):
        transforms.CropImages((0, 0, 1, 1), keys=("left_wrist_0_rgb",))({"image": {"base_0_rgb": _ramp(4, 4)}})


def test_pixel_recipe_crops_the_table_then_resizes(tmp_path):
    """pi0_aloha_sim_small: a served 120x160 observation reaches the model as the 72x112 table region at 96x144;
    the same transforms run in training (data_transforms + model_transforms of one DataConfig)."""
    cfg = _config.get_config("pi0_aloha_sim_small")
    assert cfg.model.image_resolution == (96, 144) and cfg.image_augmentation is False
    data_config = cfg.data.create(tmp_path, cfg.model)
    pipeline = transforms.compose([*data_config.data_transforms.inputs, *data_config.model_transforms.inputs])
    img = _ramp(120, 160)
    out = pipeline({"state": np.zeros(14, np.float32), "images": {"cam_high": np.transpose(img, (2, 0, 1))}})
    assert list(out["image"]) == ["base_0_rgb"]
    model_img = np.asarray(out["image"]["base_0_rgb"])
    assert model_img.shape == (96, 144, 3)
    # 72x112 scaled by 144/112 = 92x144, padded by 2 rows above and 2 below: the first content row starts at the
    # crop's top (row 24 of the render) and the left column at its left (column 24).
    assert not model_img[:2].any() and not model_img[-2:].any()
    content = model_img[2:94]
    assert abs(int(content[0, 0, 0]) - 24) <= 1 and abs(int(content[0, 0, 1]) - 24) <= 1
    assert abs(int(content[-1, -1, 0]) - 95) <= 1 and abs(int(content[-1, -1, 1]) - 135) <= 1
