"""Scripted expert for gym-aloha transfer-cube (`gym_aloha/AlohaTransferCube-v0`).

The right arm picks the cube, lifts it to a meeting point in the middle, and the left arm takes it over (reward 4 =
the left fingers hold the cube off the table).

End-effector targets go through gym-aloha's end-effector (mocap) model, where MuJoCo's weld constraint solves the
inverse kinematics; the resulting joint positions are the actions of the ordinary joint-space env. As for insertion
(`aloha_sim.scripted_insertion`), the expert is closed-loop on the env it controls: every step it reads the cube's
pose and the fingers' positions from that env's physics state, and

- centres the right fingers on the cube (x, y) while they go down (the weld's end point drifts sideways from the
  fingers when the arm reaches away from y = 0.5: the open-loop plan missed cubes near y = 0.4 / 0.6),
- servoes the *cube* (not the gripper) onto the meeting point once lifted, so the handover happens at one place
  whatever the cube's offset in the fingers,
- plans the left grasp around where the cube actually is after it has settled, centres the left fingers on it in y
  (centring in z as well made a finger knock the cube out of the right grip), and keeps the right fingers closed
  until the left ones have closed (the open-loop plan opened the right gripper while the left one was still
  approaching and dropped the cube).

`TransferCubeExpert.act(t, physics)` returns the 14-d joint action for step t; `rollout_transfer_cube` runs it in
lockstep with the joint-space env; `python -m aloha_sim.scripted --num-seeds 200` measures its success rate.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

MEET_XYZ = np.array([0.0, 0.5, 0.25])
EPISODE_LEN = 400
BOX_JOINT = "red_box_joint"
# Right grasp: mocap target below the cube centre (the weld lags under MuJoCo 3 and the fingers would otherwise close
# above the cube's centre).
PICK_DZ = -0.035
APPROACH_DZ = 0.08
# Left grasp: mocap target relative to the cube (the left gripper comes from -x, rotated 90 degrees about x so that
# its fingers close vertically, across the right fingers' grip).
LEFT_GRASP_OFFSET = np.array([0.02, 0.0, -0.02])
LEFT_RETREAT_OFFSET = np.array([-0.1, 0.0, -0.02])
CUBE_MEET_XYZ = np.array([0.0, 0.5, 0.25])  # where the right arm holds the cube for the handover
LEFT_CENTRE_AXES = (1,)  # world axes on which the left fingers are centred on the cube before closing
GRASP_GAIN, GRASP_LIMIT = 0.1, 0.05  # fraction of the finger-centring error added to the target per step (integral)
CUBE_GAIN, CUBE_LIMIT = 0.05, 0.08  # same for the cube servo at the meeting point
# Timeline (50 steps per second).
T_APPROACH, T_DOWN, T_CLOSE, T_TO_MEET, T_MEET = 90, 130, 170, 200, 220
T_CENTRE = (60, 140)  # right fingers centred on the cube during these steps
T_LEFT_REPLAN, T_LEFT_AT, T_LEFT_CLOSED = 250, 280, 305  # left: plan around the cube, reach it, close
T_RIGHT_OPEN, T_RIGHT_OPENED = 305, 325
T_RETREAT, T_RETREAT_END = 330, 370
# Null-space spring on both forearm_roll joints of the expert's own (mocap) model. The vx300s wrist is redundant near
# wrist_angle = 0: forearm_roll and wrist_rotate then turn the gripper about the same axis, and the weld IK drifted
# along that null space by an arbitrary amount per episode (forearm_roll anywhere in [-3.15, 3.12] with wrist_rotate
# cancelling it, 60 demos). The poses were right, but the joint actions were not a function of the scene, so a policy
# trained on them averages unrelated postures. With the spring, forearm_roll stays within +-0.07 rad over 200 seeds
# and the task success is 189/200 (docs: packages/aloha-sim/README.md).
ROLL_STIFFNESS = 100.0


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


def finger_midpoint(physics, arm: str) -> np.ndarray:
    """Midpoint of the two fingers of `arm` ("left" | "right"), read from the physics state."""
    xpos = physics.named.data.geom_xpos
    return (xpos[f"vx300s_{arm}/10_left_gripper_finger"] + xpos[f"vx300s_{arm}/10_right_gripper_finger"]) / 2


def cube_xyz(physics) -> np.ndarray:
    adr = physics.model.jnt_qposadr[physics.model.name2id(BOX_JOINT, "joint")]
    return physics.data.qpos[adr : adr + 3].copy()


def cube_pose(physics) -> np.ndarray:
    """[7] float32: xyz + wxyz quaternion of the cube's free joint (= physics.data.qpos[16:23] in gym-aloha)."""
    adr = physics.model.jnt_qposadr[physics.model.name2id(BOX_JOINT, "joint")]
    return np.asarray(physics.data.qpos[adr : adr + 7], dtype=np.float32).copy()


def held_by_left(physics) -> bool:
    """The cube touches a left finger and is more than 5 cm above the table (a transfer that lasts, stricter than
    gym-aloha's reward 4, which a momentary touch of the left fingers on a falling cube also earns). With this
    expert the cube then rests on the closed left fingers rather than being pinched between them."""
    if cube_xyz(physics)[2] < 0.05 + 0.02:
        return False
    for contact in physics.data.contact[: physics.data.ncon]:
        names = {physics.model.id2name(contact.geom1, "geom"), physics.model.id2name(contact.geom2, "geom")}
        if "red_box" in names and any(str(n).startswith("vx300s_left/") for n in names):
            return True
    return False


class TransferCubeExpert:
    """Closed-loop scripted transfer-cube. Create one per episode with the sampled cube pose."""

    def __init__(self, box_pose: np.ndarray):
        from dm_control import mujoco as dm_mujoco
        from gym_aloha.constants import ASSETS_DIR
        from gym_aloha.constants import DT
        from gym_aloha.tasks.sim_end_effector import TransferCubeEndEffectorTask

        self.physics = dm_mujoco.Physics.from_xml_path(
            str(ASSETS_DIR / "bimanual_viperx_end_effector_transfer_cube.xml")
        )
        self.task = TransferCubeEndEffectorTask()
        with self.physics.reset_context():
            self.task.initialize_robots(self.physics)
            adr = self.physics.model.jnt_qposadr[self.physics.model.name2id(BOX_JOINT, "joint")]
            self.physics.data.qpos[adr : adr + 7] = box_pose
        for arm in ("left", "right"):
            joint = self.physics.model.name2id(f"vx300s_{arm}/forearm_roll", "joint")
            self.physics.model.jnt_stiffness[joint] = ROLL_STIFFNESS  # spring towards qpos0 = 0 (see ROLL_STIFFNESS)
        self.n_sub = int(round(DT / self.physics.model.opt.timestep))
        d = self.physics.data
        init_left = np.concatenate([d.mocap_pos[0], d.mocap_quat[0]])
        init_right = np.concatenate([d.mocap_pos[1], d.mocap_quat[1]])
        pick_quat = quat_mul(init_right[3:], quat_axis_angle([0.0, 1.0, 0.0], -60))
        self.q_left = quat_axis_angle([1.0, 0.0, 0.0], 90)
        box = np.asarray(box_pose[:3], dtype=np.float64)
        self.right = [
            Waypoint(0, init_right[:3], init_right[3:], 0.0),
            Waypoint(T_APPROACH, box + [0, 0, APPROACH_DZ], pick_quat, 1.0),  # above the cube
            Waypoint(T_DOWN, box + [0, 0, PICK_DZ], pick_quat, 1.0),  # go down
            Waypoint(T_CLOSE, box + [0, 0, PICK_DZ], pick_quat, 0.0),  # close the gripper
            Waypoint(T_TO_MEET, MEET_XYZ + [0.05, 0, 0], pick_quat, 0.0),  # approach the meeting point
            Waypoint(T_MEET, MEET_XYZ, pick_quat, 0.0),  # meeting point
            Waypoint(T_RIGHT_OPEN, MEET_XYZ, pick_quat, 0.0),  # hold until the left fingers have closed
            Waypoint(T_RIGHT_OPENED, MEET_XYZ, pick_quat, 1.0),  # open
            Waypoint(T_RETREAT, MEET_XYZ, pick_quat, 1.0),
            Waypoint(T_RETREAT_END, MEET_XYZ + [0.1, 0, 0], pick_quat, 1.0),  # move right
        ]
        wait = MEET_XYZ + LEFT_RETREAT_OFFSET
        self.left = [
            Waypoint(0, init_left[:3], init_left[3:], 0.0),
            Waypoint(100, wait, self.q_left, 1.0),  # open, next to the meeting point
            Waypoint(EPISODE_LEN, wait, self.q_left, 1.0),
        ]
        self.right_corr = np.zeros(3)
        self.left_corr = np.zeros(3)

    def _targets(self, t: int, env_physics):
        if T_CENTRE[0] <= t < T_CENTRE[1]:  # centre the right fingers on the cube (x, y) while going down
            err = cube_xyz(env_physics) - finger_midpoint(env_physics, "right")
            err[2] = 0.0
            self.right_corr = np.clip(self.right_corr + GRASP_GAIN * err, -GRASP_LIMIT, GRASP_LIMIT)
        if T_TO_MEET <= t < T_RIGHT_OPEN:  # lifted: bring the cube itself onto the meeting point
            err = CUBE_MEET_XYZ - cube_xyz(env_physics)
            self.right_corr = np.clip(self.right_corr + CUBE_GAIN * err, -CUBE_LIMIT, CUBE_LIMIT)
        if t == T_LEFT_REPLAN:  # the cube has settled: grasp it where it is
            xyz, quat, grip = _interpolate(self.left, t)
            cube = cube_xyz(env_physics)
            grasp, retreat = cube + LEFT_GRASP_OFFSET, cube + LEFT_RETREAT_OFFSET
            self.left = [
                Waypoint(t, xyz, quat, grip),
                Waypoint(T_LEFT_AT, grasp, self.q_left, 1.0),  # move onto the cube
                Waypoint(T_LEFT_CLOSED, grasp, self.q_left, 0.0),  # close the gripper
                Waypoint(T_RETREAT, grasp, self.q_left, 0.0),  # wait for the right fingers to open
                Waypoint(T_RETREAT_END, retreat, self.q_left, 0.0),  # pull left
                Waypoint(EPISODE_LEN, retreat, self.q_left, 0.0),
            ]
        if T_LEFT_REPLAN + 10 <= t < T_LEFT_AT + 10:  # centre the left fingers on the cube (y)
            err = cube_xyz(env_physics) - finger_midpoint(env_physics, "left")
            err[[a for a in range(3) if a not in LEFT_CENTRE_AXES]] = 0.0
            self.left_corr = np.clip(self.left_corr + GRASP_GAIN * err, -GRASP_LIMIT, GRASP_LIMIT)
        lx, lq, lg = _interpolate(self.left, t)
        rx, rq, rg = _interpolate(self.right, t)
        return lx + self.left_corr, lq, lg, rx + self.right_corr, rq, rg

    def act(self, t: int, env_physics=None) -> np.ndarray:
        """Joint action for step t given the controlled env's physics (default: the expert's own model)."""
        lx, lq, lg, rx, rq, rg = self._targets(t, self.physics if env_physics is None else env_physics)
        self.task.before_step(np.concatenate([lx, lq, [lg], rx, rq, [rg]]), self.physics)
        for _ in range(self.n_sub):
            self.physics.step()
        qpos = self.task.get_qpos(self.physics)
        # The joint-space env takes the *commanded* normalized gripper, not the measured finger position.
        qpos[6], qpos[13] = lg, rg
        return qpos


def make_expert(task: str, seed: int):
    """The scripted expert of gym task `task` for the object poses gym-aloha samples for `seed`."""
    if task == "gym_aloha/AlohaInsertion-v0":
        from gym_aloha.utils import sample_insertion_pose

        from aloha_sim.scripted_insertion import InsertionExpert

        return InsertionExpert(*sample_insertion_pose(seed))
    from gym_aloha.utils import sample_box_pose

    return TransferCubeExpert(sample_box_pose(seed))


def rollout_transfer_cube(env, seed: int, episode_len: int = EPISODE_LEN) -> tuple[np.ndarray, np.ndarray, float]:
    """Runs the expert in lockstep with the joint-space env (seeded reset, no rendering needed) and returns
    (states [T,14], actions [T,14], max_reward); `held_by_left(env.unwrapped._env.physics)` afterwards tells
    whether the cube is still in the left gripper at the end."""
    from gym_aloha.utils import sample_box_pose

    expert = TransferCubeExpert(sample_box_pose(seed))
    obs, _ = env.reset(seed=seed)
    physics = env.unwrapped._env.physics
    states, actions, max_reward = [], [], 0.0
    for t in range(episode_len):
        states.append(np.asarray(obs["agent_pos"], dtype=np.float32))
        action = expert.act(t, physics)
        actions.append(action.astype(np.float32))
        obs, reward, _, _, _ = env.step(action)
        max_reward = max(max_reward, float(reward))
    return np.stack(states), np.stack(actions), max_reward


def evaluate(num_seeds: int = 10, first_seed: int = 0) -> list[float]:
    """Max reward of the expert for seeds first_seed.. in the joint-space env (no rendering)."""
    from aloha_sim.env import make_gym_env

    env = make_gym_env("gym_aloha/AlohaTransferCube-v0", max_episode_steps=EPISODE_LEN + 1, render=False)
    physics = env.unwrapped._env.physics
    rewards, held, start = [], 0, time.time()
    for seed in range(first_seed, first_seed + num_seeds):
        rewards.append(rollout_transfer_cube(env, seed)[2])
        kept = held_by_left(physics)
        held += kept
        if rewards[-1] < 4 or not kept:
            print(
                f"[transfer-cube expert] seed {seed}: max reward {rewards[-1]:.0f}, held at the end: {kept}", flush=True
            )
    env.close()
    ok = sum(r >= 4 for r in rewards)
    last = first_seed + num_seeds - 1
    print(
        f"[transfer-cube expert] seeds {first_seed}..{last}: success (reward 4) {ok}/{num_seeds} "
        f"({100 * ok / num_seeds:.1f}%), cube still held by the left gripper at the end {held}/{num_seeds} "
        f"({100 * held / num_seeds:.1f}%); {time.time() - start:.0f}s"
    )
    return rewards


if __name__ == "__main__":  # python -m aloha_sim.scripted --num-seeds 200
    import tyro

    tyro.cli(evaluate)
