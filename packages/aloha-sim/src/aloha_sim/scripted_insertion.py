"""Scripted expert for gym-aloha insertion (`gym_aloha/AlohaInsertion-v0`).

The left arm picks the blue socket, the right arm picks the red peg, both lift them and meet in the middle, and the
right arm pushes the peg into the socket until it touches the pin inside (reward 4).

As for transfer-cube (`aloha_sim.scripted`), end-effector targets are turned into joint positions by gym-aloha's
end-effector (mocap) model, where MuJoCo's weld constraint solves the inverse kinematics. Unlike transfer-cube, the
insertion needs sub-centimetre alignment of an object that can pivot in the fingers, so the expert is closed-loop on
the env it controls: every step it reads the peg and socket poses from that env's physics state, and

- places the grasps on where the objects actually lie (after they settle on the table),
- holds the socket where it was lifted to, and
- servoes the mocap target of the right gripper so the peg's tip follows a line into the socket's opening (along
  the socket's actual axis), correcting for how the peg sits in the fingers and for the arm's tracking error.

`InsertionExpert.act(t, physics)` returns the 14-d joint action for step t; `rollout_insertion` runs it in lockstep
with the joint-space env.
"""

from __future__ import annotations

import numpy as np

from aloha_sim.scripted import Waypoint
from aloha_sim.scripted import _interpolate
from aloha_sim.scripted import finger_midpoint
from aloha_sim.scripted import quat_axis_angle
from aloha_sim.scripted import quat_mul

EPISODE_LEN = 400
PEG_JOINT, SOCKET_JOINT = "red_peg_joint", "blue_socket_joint"
MEET_XYZ = np.array([0.0, 0.5, 0.15])
PEG_HALF_LEN = 0.06  # peg: 12 x 2 x 2 cm box along x; socket: 12 cm square tube along x with an 8 cm pin inside
SOCKET_HALF_LEN = 0.06
PRE_INSERT = 0.04  # peg tip this far outside the socket opening before pushing in
INSERT_DEPTH = 0.035  # the pin starts 2 cm inside the opening
# Mocap target (between the fingertips, gripper tilted 60 degrees) relative to the object centre when grasping.
PEG_GRASP_DZ = -0.005
SOCKET_GRASP_DZ = -0.025
APPROACH_DZ = 0.08
LIFT_DZ = 0.14
SERVO_GAIN = 0.08  # fraction of the peg-tip error added to the right target per step (integral action)
SERVO_LIMIT = 0.1  # max correction (m); the peg can slip several cm in the fingers
# Centring the fingers on the object: the weld's end point drifts sideways (world y) from the fingers' midpoint when
# the arm reaches away from y=0.5, so the y of each target is servoed onto the object while the gripper descends.
GRASP_GAIN = 0.1
ARMS = {"left": SOCKET_JOINT, "right": PEG_JOINT}
# Timeline (50 steps per second).
T_PICK_REPLAN, T_APPROACH, T_DOWN, T_CLOSE, T_LIFT = 60, 80, 120, 160, 200
T_MEASURE, T_PRE, T_SERVO, T_INSERT = 210, 270, 290, 350


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def object_pose(physics, joint: str) -> tuple[np.ndarray, np.ndarray]:
    """(xyz, rotation matrix) of a free-joint object, read from the physics state."""
    adr = physics.model.jnt_qposadr[physics.model.name2id(joint, "joint")]
    pose = physics.data.qpos[adr : adr + 7]
    return pose[:3].copy(), quat_to_mat(pose[3:])


def peg_tip(physics) -> np.ndarray:
    """The peg end that goes into the socket (its -x end)."""
    xyz, rot = object_pose(physics, PEG_JOINT)
    return xyz + rot @ [-PEG_HALF_LEN, 0.0, 0.0]


def socket_mouth(physics) -> tuple[np.ndarray, np.ndarray]:
    """(centre of the socket's +x opening, unit axis pointing out of it)."""
    xyz, rot = object_pose(physics, SOCKET_JOINT)
    axis = rot[:, 0]
    return xyz + SOCKET_HALF_LEN * axis, axis


def _pick_plan(start: Waypoint, obj_xyz: np.ndarray, quat: np.ndarray, dz: float) -> list[Waypoint]:
    return [
        start,
        Waypoint(T_APPROACH, obj_xyz + [0, 0, APPROACH_DZ], quat, 1.0),  # above the object
        Waypoint(T_DOWN, obj_xyz + [0, 0, dz], quat, 1.0),  # go down
        Waypoint(T_CLOSE, obj_xyz + [0, 0, dz], quat, 0.0),  # close the gripper
        Waypoint(T_LIFT, obj_xyz + [0, 0, LIFT_DZ], quat, 0.0),  # lift
    ]


class InsertionExpert:
    """Closed-loop scripted insertion. Create one per episode with the sampled object poses."""

    def __init__(self, peg_pose: np.ndarray, socket_pose: np.ndarray):
        from dm_control import mujoco as dm_mujoco
        from gym_aloha.constants import ASSETS_DIR
        from gym_aloha.constants import DT
        from gym_aloha.tasks.sim_end_effector import InsertionEndEffectorTask

        self.physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / "bimanual_viperx_end_effector_insertion.xml"))
        self.task = InsertionEndEffectorTask()
        with self.physics.reset_context():
            self.task.initialize_robots(self.physics)
            for joint, pose in ((PEG_JOINT, peg_pose), (SOCKET_JOINT, socket_pose)):
                adr = self.physics.model.jnt_qposadr[self.physics.model.name2id(joint, "joint")]
                self.physics.data.qpos[adr : adr + 7] = pose
        self.n_sub = int(round(DT / self.physics.model.opt.timestep))
        d = self.physics.data
        init_left = np.concatenate([d.mocap_pos[0], d.mocap_quat[0]])
        init_right = np.concatenate([d.mocap_pos[1], d.mocap_quat[1]])
        self.q_left = quat_mul(init_left[3:], quat_axis_angle([0.0, 1.0, 0.0], 60))
        self.q_right = quat_mul(init_right[3:], quat_axis_angle([0.0, 1.0, 0.0], -60))
        start_l, start_r = (
            Waypoint(0, init_left[:3], init_left[3:], 0.0),
            Waypoint(0, init_right[:3], init_right[3:], 0.0),
        )
        self.left = _pick_plan(start_l, np.asarray(socket_pose[:3]), self.q_left, SOCKET_GRASP_DZ)
        self.right = _pick_plan(start_r, np.asarray(peg_pose[:3]), self.q_right, PEG_GRASP_DZ)
        self.grasp_corr = {arm: np.zeros(3) for arm in ARMS}
        self.correction = np.zeros(3)  # integral term of the peg-tip servo
        self.tip_start = self.tip_offset = self._last_goal = np.zeros(3)  # set at T_MEASURE

    def _tip_goal(self, t: int, mouth: np.ndarray, axis: np.ndarray) -> np.ndarray:
        pre = mouth + PRE_INSERT * axis
        if t <= T_PRE:
            s = (t - T_MEASURE) / (T_PRE - T_MEASURE)
            return self.tip_start + (pre - self.tip_start) * s
        s = np.clip((t - T_SERVO) / (T_INSERT - T_SERVO), 0.0, 1.0)
        return mouth + axis * (PRE_INSERT + (-INSERT_DEPTH - PRE_INSERT) * s)

    def _targets(self, t: int, env_physics):
        if t == T_PICK_REPLAN:  # grasp where the objects came to rest
            for side in ("left", "right"):
                plan = getattr(self, side)
                xyz, quat, grip = _interpolate(plan, t)
                obj = object_pose(env_physics, SOCKET_JOINT if side == "left" else PEG_JOINT)[0]
                dz = SOCKET_GRASP_DZ if side == "left" else PEG_GRASP_DZ
                setattr(self, side, _pick_plan(Waypoint(t, xyz, quat, grip), obj, plan[-1].quat, dz))
        if T_PICK_REPLAN <= t < T_DOWN + 10:  # centre the fingers on the object (y) while going down
            for arm, joint in ARMS.items():
                err = object_pose(env_physics, joint)[0][1] - finger_midpoint(env_physics, arm)[1]
                self.grasp_corr[arm][1] = np.clip(self.grasp_corr[arm][1] + GRASP_GAIN * err, -0.04, 0.04)
        if t == T_MEASURE:  # both lifted: hold the socket at the meeting point, start servoing the peg
            lx = _interpolate(self.left, t)[0] + self.grasp_corr["left"]
            socket_off = object_pose(env_physics, SOCKET_JOINT)[0] - lx
            goal = MEET_XYZ - [SOCKET_HALF_LEN + PRE_INSERT / 2, 0, 0]
            self.left = [Waypoint(t, lx, self.q_left, 0.0), Waypoint(T_PRE, goal - socket_off, self.q_left, 0.0)]
            rx = _interpolate(self.right, t)[0] + self.grasp_corr["right"]
            self.tip_start = peg_tip(env_physics)
            self.tip_offset = rx - self.tip_start  # mocap target minus peg tip
        lx, lq, lg = _interpolate(self.left, t)
        if t < T_MEASURE:
            lx = lx + self.grasp_corr["left"]
            rx, rq, rg = _interpolate(self.right, t)
            return lx, lq, lg, rx + self.grasp_corr["right"], rq, rg
        mouth, axis = socket_mouth(env_physics)
        tip = peg_tip(env_physics)
        if t >= T_PRE:  # integral correction of the tip position
            err = self._last_goal - tip
            self.correction = np.clip(self.correction + SERVO_GAIN * err, -SERVO_LIMIT, SERVO_LIMIT)
        goal = self._tip_goal(t, mouth, axis)
        self._last_goal = goal
        return lx, lq, lg, goal + self.tip_offset + self.correction, self.q_right, 0.0

    def act(self, t: int, env_physics=None) -> np.ndarray:
        """Joint action for step t given the controlled env's physics (default: the expert's own model)."""
        lx, lq, lg, rx, rq, rg = self._targets(t, self.physics if env_physics is None else env_physics)
        self.task.before_step(np.concatenate([lx, lq, [lg], rx, rq, [rg]]), self.physics)
        for _ in range(self.n_sub):
            self.physics.step()
        qpos = self.task.get_qpos(self.physics)
        qpos[6], qpos[13] = lg, rg  # the joint-space env takes the commanded normalized gripper
        return qpos


def rollout_insertion(env, seed: int, episode_len: int = EPISODE_LEN, *, render: bool = True):
    """Runs the expert in lockstep with the gym insertion env (seeded reset) and returns
    (frames [T,H,W,3] uint8 or None, states [T,14], actions [T,14], max_reward)."""
    from gym_aloha.utils import sample_insertion_pose

    peg_pose, socket_pose = sample_insertion_pose(seed)
    expert = InsertionExpert(peg_pose, socket_pose)
    obs, _ = env.reset(seed=seed)
    physics = env.unwrapped._env.physics
    frames, states, actions, max_reward = [], [], [], 0.0
    for t in range(episode_len):
        if render:
            frames.append(obs["pixels"]["top"])
        states.append(np.asarray(obs["agent_pos"], dtype=np.float32))
        action = expert.act(t, physics)
        actions.append(action.astype(np.float32))
        obs, reward, _, _, _ = env.step(action)
        max_reward = max(max_reward, float(reward))
    return (np.stack(frames) if render else None), np.stack(states), np.stack(actions), max_reward


def evaluate(num_seeds: int = 10, first_seed: int = 0) -> list[float]:
    """Max reward of the expert for seeds first_seed.. in the joint-space env (no rendering)."""
    from aloha_sim.env import make_gym_env

    env = make_gym_env("gym_aloha/AlohaInsertion-v0", max_episode_steps=EPISODE_LEN + 1, render=False)
    rewards = []
    for seed in range(first_seed, first_seed + num_seeds):
        rewards.append(rollout_insertion(env, seed, render=False)[3])
        print(f"[insertion expert] seed {seed}: max reward {rewards[-1]:.0f}", flush=True)
    env.close()
    ok = sum(r >= 4 for r in rewards)
    print(f"[insertion expert] success (reward 4) on {ok}/{num_seeds} seeds ({100 * ok / num_seeds:.0f}%)")
    return rewards


if __name__ == "__main__":  # python -m aloha_sim.scripted_insertion --num-seeds 10
    import tyro

    tyro.cli(evaluate)
