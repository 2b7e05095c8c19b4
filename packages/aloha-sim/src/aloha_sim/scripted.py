"""Scripted expert for gym-aloha transfer-cube.

The expert plans end-effector waypoints from the cube pose, executes them in gym-aloha's end-effector (mocap)
model, where MuJoCo's weld constraint solves the inverse kinematics, and records the resulting joint trajectory.
That joint trajectory is the action sequence for the ordinary joint-space `gym_aloha/AlohaTransferCube-v0` env.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Waypoint timings and offsets follow the scripted transfer-cube policy used to make the ALOHA sim datasets.
MEET_XYZ = np.array([0.0, 0.5, 0.25])
EPISODE_LEN = 400
# Grasp height relative to the sampled cube position. Deeper than the original plan's -0.015 because the weld that
# drags the gripper lags under MuJoCo 3 and the fingers would otherwise close above the cube's centre.
PICK_DZ = -0.035
# When the right arm has reached the meeting point, the left arm re-plans its grasp around where the cube
# actually is (the cube sits in the right fingers a few cm away from the nominal meeting point).
REPLAN_T = 225


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (w, x, y, z) quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def quat_axis_angle(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    half = np.deg2rad(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * axis])


@dataclasses.dataclass(frozen=True)
class Waypoint:
    t: int
    xyz: np.ndarray
    quat: np.ndarray
    gripper: float  # normalized: 0 closed, 1 open


def _interpolate(waypoints: list[Waypoint], t: int) -> tuple[np.ndarray, np.ndarray, float]:
    for prev, nxt in zip(waypoints[:-1], waypoints[1:]):
        if prev.t <= t <= nxt.t:
            frac = (t - prev.t) / max(nxt.t - prev.t, 1)
            xyz = prev.xyz + (nxt.xyz - prev.xyz) * frac
            quat = prev.quat + (nxt.quat - prev.quat) * frac
            grip = prev.gripper + (nxt.gripper - prev.gripper) * frac
            return xyz, quat, grip
    last = waypoints[-1]
    return last.xyz, last.quat, last.gripper


def transfer_cube_waypoints(box_xyz: np.ndarray, init_left: np.ndarray, init_right: np.ndarray):
    """End-effector plans (left, right) for picking the cube with the right arm and handing it to the left."""
    pick_quat = quat_mul(init_right[3:], quat_axis_angle([0.0, 1.0, 0.0], -60))
    meet_left_quat = quat_axis_angle([1.0, 0.0, 0.0], 90)
    q_l, q_r = init_left[3:], init_right[3:]
    left = [
        Waypoint(0, init_left[:3], q_l, 0.0),
        Waypoint(100, MEET_XYZ + [-0.1, 0, -0.02], meet_left_quat, 1.0),  # approach meet position
        Waypoint(260, MEET_XYZ + [0.02, 0, -0.02], meet_left_quat, 1.0),  # move to meet position
        Waypoint(310, MEET_XYZ + [0.02, 0, -0.02], meet_left_quat, 0.0),  # close gripper
        Waypoint(360, MEET_XYZ + [-0.1, 0, -0.02], meet_left_quat, 0.0),  # pull left
        Waypoint(400, MEET_XYZ + [-0.1, 0, -0.02], meet_left_quat, 0.0),  # stay
    ]
    right = [
        Waypoint(0, init_right[:3], q_r, 0.0),
        Waypoint(90, box_xyz + [0, 0, 0.08], pick_quat, 1.0),  # approach the cube
        Waypoint(130, box_xyz + [0, 0, PICK_DZ], pick_quat, 1.0),  # go down
        Waypoint(170, box_xyz + [0, 0, PICK_DZ], pick_quat, 0.0),  # close gripper
        Waypoint(200, MEET_XYZ + [0.05, 0, 0], pick_quat, 0.0),  # approach meet position
        Waypoint(220, MEET_XYZ, pick_quat, 0.0),  # meet position
        Waypoint(310, MEET_XYZ, pick_quat, 1.0),  # open gripper
        Waypoint(360, MEET_XYZ + [0.1, 0, 0], pick_quat, 1.0),  # move right
        Waypoint(400, MEET_XYZ + [0.1, 0, 0], pick_quat, 1.0),  # stay
    ]
    return left, right


def _replan_left(plan: list[Waypoint], t: int, cube_xyz: np.ndarray) -> list[Waypoint]:
    xyz, quat, grip = _interpolate(plan, t)
    q = plan[-1].quat
    grasp = cube_xyz + [0.02, 0, -0.02]
    retreat = cube_xyz + [-0.1, 0, -0.02]
    return [
        Waypoint(t, xyz, quat, grip),
        Waypoint(265, grasp, q, 1.0),  # move onto the cube
        Waypoint(310, grasp, q, 0.0),  # close gripper
        Waypoint(360, retreat, q, 0.0),  # pull left
        Waypoint(400, retreat, q, 0.0),
    ]


def plan_transfer_cube_joints(box_pose: np.ndarray, episode_len: int = EPISODE_LEN) -> np.ndarray:
    """Runs the end-effector plan in the mocap model and returns the [episode_len, 14] joint action sequence."""
    from dm_control import mujoco as dm_mujoco
    from gym_aloha.constants import ASSETS_DIR
    from gym_aloha.constants import DT
    from gym_aloha.tasks.sim_end_effector import TransferCubeEndEffectorTask

    physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / "bimanual_viperx_end_effector_transfer_cube.xml"))
    task = TransferCubeEndEffectorTask()
    with physics.reset_context():
        task.initialize_robots(physics)
        box = physics.model.name2id("red_box_joint", "joint")
        adr = physics.model.jnt_qposadr[box]
        physics.data.qpos[adr : adr + 7] = box_pose
    n_sub = int(round(DT / physics.model.opt.timestep))
    init_left = np.concatenate([physics.data.mocap_pos[0], physics.data.mocap_quat[0]])
    init_right = np.concatenate([physics.data.mocap_pos[1], physics.data.mocap_quat[1]])
    left_plan, right_plan = transfer_cube_waypoints(np.asarray(box_pose[:3]), init_left, init_right)

    box_adr = physics.model.jnt_qposadr[physics.model.name2id("red_box_joint", "joint")]
    joints = np.zeros((episode_len, 14))
    for t in range(episode_len):
        if t == REPLAN_T:
            left_plan = _replan_left(left_plan, t, physics.data.qpos[box_adr : box_adr + 3].copy())
        lx, lq, lg = _interpolate(left_plan, t)
        rx, rq, rg = _interpolate(right_plan, t)
        task.before_step(np.concatenate([lx, lq, [lg], rx, rq, [rg]]), physics)
        for _ in range(n_sub):
            physics.step()
        qpos = task.get_qpos(physics)
        # The joint-space env takes the *commanded* normalized gripper, not the measured finger position.
        qpos[6], qpos[13] = lg, rg
        joints[t] = qpos
    return joints
