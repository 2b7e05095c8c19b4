"""The flexivrdk 2.x driver against the real SDK binary's types and signatures (in .venv-flexiv, Python 3.12) and
kinesthetic (teach) collection on the simulated Rizon."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FLEXIV_PY = REPO_ROOT / ".venv-flexiv" / "bin" / "python"


def _drive(mode: str) -> dict:
    if not FLEXIV_PY.exists():
        pytest.skip(".venv-flexiv not built (no Python 3.12/3.10 on this machine)")
    script = pathlib.Path(__file__).with_name("flexiv_fake_sdk.py")
    r = subprocess.run(
        [str(FLEXIV_PY), str(script), mode], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_qpos_mode_sends_group_keyed_joint_commands_with_configured_limits():
    out = _drive("qpos")
    names = [c[0] for c in out["log"]]
    assert names[:4] == ["ServoOn", "SwitchMode", "GripperEnable", "SendJointPosition"], names
    assert out["log"][1] == ["SwitchMode", "NRT_JOINT_POSITION"]
    _, q_d, dq_max, ddq_max = out["log"][3]
    np.testing.assert_allclose(q_d, np.asarray(out["state"][:7]) + 0.01, atol=1e-6)
    assert dq_max == [0.3] * 7 and ddq_max == [1.0] * 7  # --motion.max-joint-vel 0.3, default acceleration
    assert out["log"][4][0] == "GripperMove" and out["log"][4][2:] == [0.1, 20.0]
    assert names[-1] == "Stop"
    # Joint limits from RobotInfo (+-1 rad in the fake) tighten the configured ones.
    assert out["high"][:7] == [1.0] * 7


def test_pose_mode_sends_cartesian_commands_as_quaternions():
    out = _drive("pose")
    assert out["log"][1] == ["SwitchMode", "NRT_CARTESIAN_MOTION_FORCE"]
    cmd = next(c for c in out["log"] if c[0] == "SendCartesianMotionForce")
    pose7, lin, ang = cmd[1], cmd[2], cmd[3]
    np.testing.assert_allclose(pose7[:3], np.asarray(out["state"][:3]) + 0.01, atol=1e-6)
    assert abs(np.linalg.norm(pose7[3:]) - 1) < 1e-6 and (lin, ang) == (0.2, 1.0)


def test_teach_mode_is_compliant_and_never_commands_motion():
    out = _drive("teach")
    names = [c[0] for c in out["log"]]
    assert out["log"][1] == ["SwitchMode", "NRT_JOINT_IMPEDANCE"]
    assert out["log"][2] == ["SetJointImpedance", [100.0] * 7]  # 0.1 x the nominal stiffness
    assert "SendJointPosition" not in names and "SendCartesianMotionForce" not in names and "GripperMove" not in names


def test_teach_collection_records_the_next_state_as_the_action(tmp_path, monkeypatch):
    import lerobot.datasets.lerobot_dataset as ld
    import lerobot.utils.constants as lc

    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path))
    monkeypatch.setattr(lc, "HF_LEROBOT_HOME", tmp_path)
    monkeypatch.setattr(ld, "HF_LEROBOT_HOME", tmp_path)
    from robot_common.cameras import CameraArgs
    from robot_flexiv import collect

    args = collect.Args(
        repo_id="flexiv_teach",
        num_episodes=1,
        episode_steps=8,
        sim=True,
        teach=True,
        cameras=CameraArgs(height=16, width=16),
        keep_off_rate=True,  # about the data, not the clock (test_robots_recording_rate.py)
    )
    assert collect.main(args) == 1
    ds = ld.LeRobotDataset("flexiv_teach", root=tmp_path / "flexiv_teach", video_backend="torchcodec")
    assert len(ds) == 8
    frames = [ds.hf_dataset[i] for i in range(8)]
    for space in ("qpos", "pose"):
        states = np.stack([np.asarray(f[f"observation.state.{space}"]) for f in frames])
        actions = np.stack([np.asarray(f[f"action.{space}"]) for f in frames])
        np.testing.assert_allclose(actions[:-1], states[1:], atol=1e-6)  # where the hand took the arm next
        np.testing.assert_allclose(actions[-1], states[-1], atol=1e-6)
        assert np.abs(states[-1] - states[0]).max() > 1e-3  # the arm did move


def test_real_flexiv_collection_without_teach_is_refused():
    from robot_flexiv import collect

    with pytest.raises(ValueError, match="kinesthetic"):
        collect.main(collect.Args(sim=False, teach=False))
    with pytest.raises(ValueError, match="--robot-sn"):
        collect.main(collect.Args(sim=False))
