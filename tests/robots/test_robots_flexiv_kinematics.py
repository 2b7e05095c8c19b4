"""Simulated Rizon 4: published kinematics (FK checked against transforms composed by hand from the URDF numbers),
IK round trips, first-order tracking with velocity limits, the pose-mode workspace, and quaternion / rotation-6D
conversions with sign continuity."""

import numpy as np
import pytest

from robot_common import rotations
from robot_flexiv import arm as flexiv_arm
from robot_flexiv import kinematics
from robot_flexiv import sim

# --- FK against an independent composition of the URDF (flexiv_rdk resources/flexiv_rizon4_kinematics.urdf) -----


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _t(xyz=(0, 0, 0), rot=np.eye(3)):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, xyz
    return m


def _urdf_fk(q):
    """4x4 chain written out joint by joint: origin xyz, origin rpy, then the rotation about the joint axis."""
    pi = np.pi
    chain = [
        _t((0.0, 0.0, 0.155), _rz(-pi)) @ _t(rot=_rz(q[0])),
        _t((0.0, 0.03, 0.21)) @ _t(rot=_ry(q[1])),
        _t((0.0, 0.035, 0.205)) @ _t(rot=_rz(q[2])),
        _t((-0.02, -0.03, 0.19), _rz(-pi)) @ _t(rot=_ry(q[3])),
        _t((-0.02, 0.025, 0.195), _rz(-pi)) @ _t(rot=_rz(q[4])),
        _t((0.0, 0.03, 0.19)) @ _t(rot=_ry(q[5])),
        _t((-0.015, 0.073, 0.11), _ry(-1.5707963478683205)) @ _t(rot=_rz(q[6])),
        _t((0.0, 0.0, 0.081), _rz(-pi)),  # link7_to_flange
    ]
    m = np.eye(4)
    for link in chain:
        m = m @ link
    return m


def test_fk_at_zero_matches_the_hand_derived_flange_pose():
    p, r = kinematics.fk(np.zeros(7))
    # Summing the URDF offsets by hand (the z flips of joints 1/4/5 and joint 7's -90 deg pitch):
    np.testing.assert_allclose(p, [0.096, -0.113, 1.255], atol=1e-9)
    np.testing.assert_allclose(r, [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-7)


@pytest.mark.parametrize(
    "q",
    [
        kinematics.HOME,
        [0.3, -0.5, 0.4, 1.2, -0.7, 1.1, 0.9],
        [-1.0, 0.8, -2.0, -1.5, 2.5, -1.2, -2.9],
    ],
)
def test_fk_matches_the_urdf_composed_by_hand(q):
    m = _urdf_fk(np.asarray(q, np.float64))
    p, r = kinematics.fk(q)
    np.testing.assert_allclose(p, m[:3, 3], atol=1e-9)
    np.testing.assert_allclose(r, m[:3, :3], atol=1e-9)


def test_home_is_the_flexiv_home_posture_pointing_down():
    p, r = kinematics.fk(kinematics.HOME)
    assert np.all(kinematics.HOME >= kinematics.Q_LOW) and np.all(kinematics.HOME <= kinematics.Q_HIGH)
    assert 0.6 < p[0] < 0.75 and abs(p[1] + 0.113) < 1e-6 and 0.25 < p[2] < 0.4
    assert r[2, 2] < -0.999  # the flange z axis points at the table


def test_jacobian_matches_finite_differences():
    q = np.array([0.3, -0.5, 0.4, 1.2, -0.7, 1.1, 0.9])
    jac = kinematics.jacobian(q)
    p0, r0 = kinematics.fk(q)
    h = 1e-6
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = h
        p1, r1 = kinematics.fk(q + dq)
        np.testing.assert_allclose((p1 - p0) / h, jac[:3, i], atol=1e-5)
        w = r1 @ r0.T  # ~ I + [omega]x h
        np.testing.assert_allclose([w[2, 1], w[0, 2], w[1, 0]], jac[3:, i] * h, atol=1e-9)


def test_ik_round_trip_from_nearby_seeds():
    rng = np.random.default_rng(0)
    for _ in range(40):
        q = np.clip(kinematics.HOME + rng.normal(0, 0.4, 7), kinematics.Q_LOW, kinematics.Q_HIGH)
        p, r = kinematics.fk(q)
        seed = np.clip(q + rng.normal(0, 0.15, 7), kinematics.Q_LOW, kinematics.Q_HIGH)
        q2 = kinematics.ik(p, r, seed)
        p2, r2 = kinematics.fk(q2)
        assert np.all(q2 >= kinematics.Q_LOW) and np.all(q2 <= kinematics.Q_HIGH)
        assert np.linalg.norm(p2 - p) < 1e-4
        angle = np.arccos(np.clip((np.trace(r2.T @ r) - 1) / 2, -1, 1))
        assert angle < 1e-3


def test_ik_of_an_unreachable_target_stays_in_limits_and_gets_closer():
    p_home, r_home = kinematics.fk(kinematics.HOME)
    target = np.array([1.5, 0.0, 0.3])  # twice the reach
    q = kinematics.ik(target, r_home, kinematics.HOME)
    assert np.all(np.isfinite(q)) and np.all(q >= kinematics.Q_LOW) and np.all(q <= kinematics.Q_HIGH)
    assert np.linalg.norm(kinematics.fk(q)[0] - target) < np.linalg.norm(p_home - target) - 0.1


# --- first-order tracking ---------------------------------------------------------------------------------------


def _backend(**kw):
    b = sim.SimRizonBackend(clock=None, **kw)
    b.connect("qpos")
    return b


def test_tracking_is_a_first_order_lag_reaching_95_percent_in_3_tau():
    b = _backend(tau=0.05)
    step = np.zeros(7)
    step[6] = 0.2  # joint 7, small enough not to hit its velocity limit (0.2 / tau = 4 rad/s < 4.89)
    b.move_joints(kinematics.HOME + step)
    dt, progress = 0.001, []
    for _ in range(300):
        b.step(dt)
        progress.append((b.joints()[6] - kinematics.HOME[6]) / 0.2)
    progress = np.asarray(progress)
    t95 = (np.argmax(progress >= 0.95) + 1) * dt
    assert 2.9 * b.tau <= t95 <= 3.1 * b.tau, t95
    assert np.all(np.diff(progress) > 0) and progress.max() <= 1.0  # monotone, no overshoot
    np.testing.assert_allclose(b.joints()[:6], kinematics.HOME[:6], atol=1e-12)  # other joints did not move


def test_tracking_never_exceeds_the_joint_velocity_limits_and_settles():
    b = _backend()
    target = np.clip(kinematics.HOME + np.array([2.0, -1.0, 1.5, -1.0, 2.0, 1.5, -2.0]), -10, 10)
    b.move_joints(target)
    target = np.clip(target, kinematics.Q_LOW, kinematics.Q_HIGH)
    dt, q_prev, v_max_seen = 0.002, b.joints(), np.zeros(7)
    for _ in range(1000):
        b.step(dt)
        q = b.joints()
        v = np.abs(q - q_prev) / dt
        assert np.all(v <= kinematics.DQ_MAX * (1 + 1e-9)), v
        v_max_seen, q_prev = np.maximum(v_max_seen, v), q
    assert np.all(v_max_seen > 0.99 * kinematics.DQ_MAX)  # a large step does run at the limit
    assert b.settled(1e-4)
    np.testing.assert_allclose(b.joints(), target, atol=1e-4)


def test_tracking_does_not_depend_on_the_read_rate_and_follows_the_clock():
    coarse, fine = _backend(), _backend()
    target = kinematics.HOME + np.array([1.0, -0.3, 0.05, 0.4, -2.0, 0.01, 0.5])
    for b in (coarse, fine):
        b.move_joints(target)
        b.move_gripper(0.0)
    coarse.step(0.3)
    for _ in range(300):
        fine.step(0.001)
    np.testing.assert_allclose(coarse.joints(), fine.joints(), atol=1e-9)
    assert coarse.gripper_width() == pytest.approx(fine.gripper_width(), abs=1e-12)
    assert 0.0 < coarse.gripper_width() < 0.05 - 0.1 * 0.2  # the gripper is velocity limited too (0.1 m/s)

    now = [100.0]  # integrate-on-read with an injected monotonic clock (a --sim run uses time.monotonic)
    b = sim.SimRizonBackend(clock=lambda: now[0])
    b.connect("qpos")
    b.move_joints(target)
    np.testing.assert_allclose(b.joints(), kinematics.HOME)  # no time has passed: nothing moved
    now[0] += 0.3
    np.testing.assert_allclose(b.joints(), coarse.joints(), atol=1e-9)


def test_cartesian_commands_go_through_ik_then_the_same_tracking():
    b = _backend()
    p, r = kinematics.fk(kinematics.HOME)
    goal = np.r_[p + [0.03, -0.02, 0.05], rotations.matrix_to_quat(r @ rotations.quat_to_matrix([0.995, 0.1, 0, 0]))]
    b.move_tcp(goal)
    np.testing.assert_allclose(b.tcp_pose7()[:3], p, atol=1e-12)  # commanded, not yet moved
    b.step(0.05)
    mid = b.tcp_pose7()[:3]
    assert 0.3 < np.linalg.norm(mid - p) / np.linalg.norm(goal[:3] - p) < 0.9
    b.step(1.0)
    pose = b.tcp_pose7()
    np.testing.assert_allclose(pose[:3], goal[:3], atol=1e-4)
    assert abs(abs(np.dot(pose[3:], goal[3:])) - 1) < 1e-6


# --- pose-mode workspace ---------------------------------------------------------------------------------------


def test_pose_workspace_holds_home_and_the_scripted_leader_and_matches_the_reach():
    lim = flexiv_arm.LIMITS["pose"]
    low, high = lim.low[:3], lim.high[:3]
    p_home, _ = kinematics.fk(kinematics.HOME)
    assert np.all(p_home - low > 0.15) and np.all(high - p_home > 0.15)
    for seed in range(4):
        leader = sim.scripted_leader_qpos(seed)
        pts = np.array([kinematics.fk(leader(t)[:7])[0] for t in range(0, 400, 3)])
        assert np.all(pts > low + 0.02) and np.all(pts < high - 0.02), seed
    # The box does not reach far past the arm: 0.78 m reach + the wrist/flange offset (~0.1 m).
    assert np.all(np.abs(high[:2]) <= kinematics.REACH + 0.1) and np.all(np.abs(low[:2]) <= kinematics.REACH + 0.1)
    rng = np.random.default_rng(0)
    pts = np.array([kinematics.fk(rng.uniform(kinematics.Q_LOW, kinematics.Q_HIGH))[0] for _ in range(3000)])
    assert np.hypot(pts[:, 0], pts[:, 1]).max() < 0.98  # no configuration reaches far outside the box either


def test_sim_arm_in_pose_mode_tracks_commands_inside_the_workspace():
    backend = sim.SimRizonBackend(clock=None)
    arm = flexiv_arm.FlexivArm(backend, "pose")
    arm.connect()
    start = arm.state().astype(np.float64)
    target = start.copy()
    target[:3] += [0.05, 0.04, -0.05]
    for _ in range(30):
        arm.command(target)
        backend.step(0.05)
    backend.step(1.0)
    state = arm.state()
    np.testing.assert_allclose(state[:3], target[:3], atol=1e-4)
    np.testing.assert_allclose(state[3:9], start[3:9], atol=1e-3)
    lim = arm.limits
    assert np.all(state[:3] >= lim.low[:3]) and np.all(state[:3] <= lim.high[:3])


# --- rotations --------------------------------------------------------------------------------------------------


def _random_quats(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _axis_angle_quat(axis, angle):
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    return np.r_[np.cos(angle / 2), np.sin(angle / 2) * axis]


def _same_rotation(q1, q2, atol):
    assert abs(abs(np.dot(q1, q2)) - 1) < atol, (q1, q2)


def test_quaternion_rot6d_round_trips_random_and_near_180_degrees():
    rng = np.random.default_rng(0)
    quats = list(_random_quats(rng, 200))
    for axis in _random_quats(rng, 20)[:, 1:]:
        for angle in (np.pi, np.pi - 1e-7, np.pi - 1e-3, np.pi + 1e-4, 1e-8):
            quats.append(_axis_angle_quat(axis, angle))
    for q in quats:
        m = rotations.quat_to_matrix(q)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        r6 = rotations.matrix_to_rot6d(m)
        np.testing.assert_allclose(rotations.rot6d_to_matrix(r6), m, atol=1e-12)
        back = rotations.matrix_to_quat(rotations.rot6d_to_matrix(r6))
        assert back[0] >= 0 and abs(np.linalg.norm(back) - 1) < 1e-12
        _same_rotation(back, q, 1e-9)
        pose7 = np.r_[rng.normal(size=3), q]
        out = rotations.pose9_to_pose7(rotations.pose7_to_pose9(pose7))
        np.testing.assert_allclose(out[:3], pose7[:3], atol=1e-12)
        _same_rotation(out[3:], q, 1e-9)


def _crossing_trajectory(n=121):
    """Rotations about a fixed axis from 150 to 210 degrees: the canonical (w >= 0) quaternion flips at 180."""
    axis = np.array([0.3, -0.5, 0.8])
    return [rotations.quat_to_matrix(_axis_angle_quat(axis, a)) for a in np.radians(np.linspace(150, 210, n))]


def test_sign_continuity_across_the_w_zero_boundary():
    mats = _crossing_trajectory()
    raw = np.array([rotations.matrix_to_quat(m) for m in mats])
    assert np.abs(np.diff(raw, axis=0)).max() > 1.0  # the canonical form jumps from q to -q at 180 deg
    cont = rotations.make_quat_sequence_continuous(raw)
    assert np.abs(np.diff(cont, axis=0)).max() < 0.02  # 0.5 deg per step: smooth
    assert np.all(np.sum(cont[1:] * cont[:-1], axis=1) > 0)
    for q, m in zip(cont, mats):
        np.testing.assert_allclose(rotations.quat_to_matrix(q), m, atol=1e-12)
    # rotation-6D is built from the matrix, which has no sign ambiguity: no jump along the same trajectory
    r6 = np.array([rotations.matrix_to_rot6d(m) for m in mats])
    assert np.abs(np.diff(r6, axis=0)).max() < 0.02
    # the single-step helper
    q = raw[70]
    np.testing.assert_allclose(rotations.quat_continuous(q, -q), -q)
    np.testing.assert_allclose(rotations.quat_continuous(q, q), q)
    np.testing.assert_allclose(rotations.quat_continuous(q, None), q)
    with pytest.raises(ValueError, match=r"\[T, 4\]"):
        rotations.make_quat_sequence_continuous(np.zeros((3, 3)))


class _RecordingBackend:
    """Stands in for the flexivrdk backend: records the poses the arm sends and reports them back."""

    def __init__(self, pose7):
        self.pose7, self.sent = np.asarray(pose7, np.float64), []

    def connect(self, mode):
        pass

    def tcp_pose7(self):
        return self.pose7.copy()

    def gripper_width(self):
        return 0.05

    def move_tcp(self, pose7):
        self.sent.append(np.array(pose7))
        self.pose7 = np.array(pose7)

    def move_gripper(self, width):
        pass


def test_pose_mode_sends_a_sign_continuous_quaternion_stream():
    mats = _crossing_trajectory(61)  # 1 deg per step
    # The robot reports its start quaternion in the w < 0 hemisphere (either sign is valid).
    backend = _RecordingBackend(np.r_[0.5, 0.0, 0.4, -rotations.matrix_to_quat(mats[0])])
    arm = flexiv_arm.FlexivArm(backend, "pose")
    arm.connect()
    for m in mats:
        arm.command(np.r_[0.5, 0.0, 0.4, rotations.matrix_to_rot6d(m), 0.05])
    quats = np.array([s[3:] for s in backend.sent])
    assert len(quats) == len(mats)
    assert np.dot(quats[0], -rotations.matrix_to_quat(mats[0])) > 0.99  # continuous with the measured one
    assert np.all(np.sum(quats[1:] * quats[:-1], axis=1) > 0.99)
    for q, m in zip(quats, mats):
        np.testing.assert_allclose(rotations.quat_to_matrix(q), m, atol=1e-9)
