"""Observation checks before the model (openpi.policies.validation): every refused field is named, with what was
expected and what arrived; valid observations (HWC / CHW, uint8 / float, RTC keys, extras) pass."""

import numpy as np
import pytest

from openpi import transforms
from openpi.policies.aloha_policy import AlohaInputs
from openpi.policies.piper_policy import PiperInputs
from openpi.policies.validation import ObservationError
from openpi.policies.validation import check_observation
from openpi.policies.validation import spec_for

H = 10
PIPER = spec_for([transforms.InjectDefaultPrompt("pick"), PiperInputs()], {"action_dim": 7, "action_horizon": H})
ALOHA = spec_for([AlohaInputs()], {"action_dim": 14, "action_horizon": H})


def piper(**changes):
    obs = {
        "observation/state": np.zeros(7, np.float32),
        "observation/images/base": np.zeros((224, 224, 3), np.uint8),
        "observation/images/wrist": np.zeros((3, 96, 128), np.uint8),
        "prompt": "pick up the cube",
        "extra": {"anything": 1},
    }
    obs.update(changes)
    return {k: v for k, v in obs.items() if v is not _DROP}


def aloha(**changes):
    obs = {"state": [0.0] * 14, "images": {"cam_high": np.zeros((3, 48, 64), np.uint8)}}
    obs.update(changes)
    return {k: v for k, v in obs.items() if v is not _DROP}


_DROP = object()


def test_valid_observations_pass():
    check_observation(piper(), PIPER)
    check_observation(piper(prompt=_DROP), PIPER)
    check_observation(piper(**{"observation/images/base": np.full((5, 7, 3), 0.5, np.float32)}), PIPER)
    check_observation(piper(prev_actions=np.zeros((H, 7), np.float32), inference_delay=np.int64(H)), PIPER)
    check_observation(piper(prev_actions=np.zeros((0, 7), np.float32), inference_delay=0), PIPER)
    check_observation(piper(prev_actions=None), PIPER)
    images = {"cam_high": np.zeros((48, 64, 3), np.uint8), "cam_left_wrist": np.ones((3, 8, 8), np.float64)}
    check_observation(aloha(images=images), ALOHA)
    # No robot transform first (a custom repack): only the robot-independent checks apply.
    generic = spec_for([transforms.RepackTransform({"state": "s"}), PiperInputs()], {"action_dim": 7})
    check_observation({"s": "whatever"}, generic)
    with pytest.raises(ObservationError, match="prompt: expected a string"):
        check_observation({"prompt": 3}, generic)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"observation/state": np.zeros(8, np.float32)},
            r"observation/state: expected 7 finite numbers \(the Piper "
            r"state\), got an array of shape \[8\] dtype float32",
        ),
        ({"observation/state": np.r_[np.zeros(6), np.nan]}, "observation/state: .*got 1 non-finite value"),
        ({"observation/state": np.full(7, np.inf, np.float32)}, "got 7 non-finite value"),
        ({"observation/state": np.zeros((1, 7), np.float32)}, r"shape \[1, 7\]"),
        ({"observation/state": [0.1] * 6 + ["x"]}, r"observation/state: .*\(not numbers\)"),
        ({"observation/state": [[0.1], [0.2, 0.3]]}, r"observation/state: .*\(ragged or not numeric\)"),
        ({"observation/state": "0 0 0 0 0 0 0"}, "observation/state: .*got a string"),
        ({"observation/state": np.ones(7, bool)}, r"observation/state: .*\(not numbers\)"),
        ({"observation/state": _DROP}, "observation/state: missing; the Piper policy needs 'observation/state'"),
        ({"observation/images/wrist": _DROP}, "observation/images/wrist: missing"),
        (
            {"observation/images/base": np.zeros((8, 8, 4), np.uint8)},
            r"observation/images/base: expected an image "
            r"array HxWx3 or 3xHxW, uint8 or float in \[0, 1\], sides 1..2048, got an array of shape \[8, 8, 4\]",
        ),
        ({"observation/images/base": np.zeros((8, 8), np.uint8)}, r"shape \[8, 8\]"),
        ({"observation/images/base": np.zeros((8, 8, 3), np.int16)}, "dtype int16"),
        ({"observation/images/base": np.zeros((3000, 8, 3), np.uint8)}, r"shape \[3000, 8, 3\]"),
        ({"observation/images/base": np.zeros((0, 8, 3), np.uint8)}, r"shape \[0, 8, 3\]"),
        ({"observation/images/base": np.full((4, 4, 3), 255.0)}, r"float pixels in \[255, 255\] \(send uint8"),
        ({"observation/images/base": np.full((4, 4, 3), np.nan)}, "NaN or inf pixels"),
        ({"observation/images/base": [[[0, 0, 0]]]}, "got a list of 1 items"),
        ({"prompt": b"pick"}, "prompt: expected a string, got a bytes"),
        ({"prompt": None}, "prompt: expected a string"),
        ({"prompt": "x" * 2001}, "prompt: expected at most 2000 characters, got 2001"),
        (
            {"prev_actions": np.zeros((3, 6), np.float32)},
            r"prev_actions: expected \[k, 7\] finite actions with k <= "
            r"10, got an array of shape \[3, 6\]",
        ),
        ({"prev_actions": np.zeros((H + 1, 7))}, r"shape \[11, 7\]"),
        ({"prev_actions": np.zeros(7)}, r"shape \[7\]"),
        ({"prev_actions": np.full((2, 7), np.nan)}, "prev_actions: .*14 non-finite"),
        ({"prev_actions": np.zeros((3, 7)), "inference_delay": 4}, r"inference_delay: expected an integer in \[0, 3\]"),
        ({"prev_actions": np.zeros((3, 7)), "inference_delay": -1}, r"in \[0, 3\].*got -1"),
        ({"prev_actions": np.zeros((3, 7)), "inference_delay": 1.0}, "got 1.0"),
        ({"prev_actions": np.zeros((3, 7)), "inference_delay": True}, "got True"),
        ({"inference_delay": 2}, r"inference_delay: expected an integer in \[0, 0\]"),
    ],
)
def test_piper_fields_are_checked(changes, message):
    with pytest.raises(ObservationError, match=message):
        check_observation(piper(**changes), PIPER)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"state": [0.0] * 13}, r"state: expected 14 finite numbers \(the ALOHA state\)"),
        ({"images": np.zeros((3, 8, 8), np.uint8)}, "images: expected a map of camera name -> image"),
        ({"images": {}}, r"images/cam_high: missing; the ALOHA policy needs it \(got \[\]\)"),
        ({"images": {"cam_high": np.zeros((3, 8, 8), np.uint8), "top": 1}}, r"images: unknown camera\(s\) \['top'\]"),
        ({"images": {"cam_high": np.zeros((3, 8, 8), np.uint8), "cam_low": "x"}}, "images/cam_low: expected an image"),
        ({"images": _DROP}, "images: missing"),
    ],
)
def test_aloha_fields_are_checked(changes, message):
    with pytest.raises(ObservationError, match=message):
        check_observation(aloha(**changes), ALOHA)


def test_aloha_privileged_env_state_is_checked_when_the_transform_appends_it():
    inputs = AlohaInputs()
    object.__setattr__(inputs, "env_state_dim", 7)  # the sim recipe's privileged tier
    spec = spec_for([inputs], {"action_dim": 14, "action_horizon": H})
    check_observation(aloha(env_state=np.zeros(7)), spec)
    with pytest.raises(ObservationError, match="env_state: missing"):
        check_observation(aloha(), spec)
    with pytest.raises(
        ObservationError, match=r"env_state: expected 7 finite numbers \(the ALOHA policy's env_state\)"
    ):
        check_observation(aloha(env_state=np.zeros(6)), spec)
