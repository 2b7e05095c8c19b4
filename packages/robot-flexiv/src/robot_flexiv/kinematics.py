"""Rizon 4 kinematics for the simulated arm, from Flexiv's published kinematic URDF.

Source (numbers only): github.com/flexivrobotics/flexiv_rdk, resources/flexiv_rizon4_kinematics.urdf
(commit 04e54b2d6d45d6bf3d31707f33bd5ffc03a069ad): per joint the fixed `origin` (xyz, rpy) from the parent link, the
joint `axis`, `limit lower/upper` (rad) and `limit velocity` (rad/s), then the fixed `link7_to_flange` transform.
The same chain is in flexiv_ros2 flexiv_description/urdf/rizon4_joints_links.xacro
(commit 3b7e03827a2108af00f79dd4be9ccbfe4acd0892), except that file places joint 7 at xyz (-0.055, 0.070, 0.11); the
RDK kinematics file is used here. Its joint limits equal the soft (safety_controller) limits of the older
resources/flexiv_Rizon4_kinematics.urdf (commit 5cbed728a21748ab6f2d271b1ade0b79196f739b), whose hard limits are
5 deg wider.

TCP = the flange (no tool): with no tool configured the robot's reported `tcp_pose` is the flange pose. Mount a
tool on the real arm and its TCP moves; the simulator has no tool.

FK composes, per joint i, T_i = Trans(xyz_i) @ RPY(rpy_i) @ Rot(axis_i, q_i) (URDF convention: RPY = Rz(y) Ry(p)
Rx(r), fixed axes), then the flange transform. The pose is expressed in the base_link frame.
"""

from __future__ import annotations

import numpy as np

from robot_common.rotations import matrix_to_quat

# (xyz, rpy, axis) of joint1..joint7, parent link -> child link.
JOINT_ORIGINS = (
    ((0.0, 0.0, 0.155), (0.0, 0.0, -np.pi), (0, 0, 1)),
    ((0.0, 0.03, 0.21), (0.0, 0.0, 0.0), (0, 1, 0)),
    ((0.0, 0.035, 0.205), (0.0, 0.0, 0.0), (0, 0, 1)),
    ((-0.02, -0.03, 0.19), (0.0, 0.0, -np.pi), (0, 1, 0)),
    ((-0.02, 0.025, 0.195), (0.0, 0.0, -np.pi), (0, 0, 1)),
    ((0.0, 0.03, 0.19), (0.0, 0.0, 0.0), (0, 1, 0)),
    ((-0.015, 0.073, 0.11), (0.0, -1.5707963478683205, 0.0), (0, 0, 1)),
)
FLANGE = ((0.0, 0.0, 0.081), (0.0, 0.0, -np.pi))  # link7_to_flange (fixed)

Q_LOW = np.array([-2.7925, -2.2689, -2.9671, -1.8675, -2.9671, -1.3963, -2.9671])
Q_HIGH = np.array([2.7925, 2.2689, 2.9671, 2.6878, 2.9671, 4.5379, 2.9671])
DQ_MAX = np.array([2.0944, 2.0944, 2.4435, 2.4435, 4.8869, 4.8869, 4.8869])
"""Per-joint maximum velocity (rad/s), URDF `limit velocity`."""

HOME = np.array([0.0, -0.7, 0.0, 1.57, 0.0, 0.7, 0.0])
"""Flexiv's home posture (0, -40, 0, 90, 0, 40, 0 deg), rounded."""

REACH = 0.78
"""Published Rizon 4 reach (m), measured from the joint-1 axis."""


def _rot_axis(axis, a: float) -> np.ndarray:
    """Rotation about a unit axis (closed form for the y / z joint axes, Rodrigues otherwise)."""
    c, s = np.cos(a), np.sin(a)
    if tuple(axis) == (0, 0, 1):
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if tuple(axis) == (0, 1, 0):
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    k = np.asarray(axis, dtype=np.float64)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def _rpy(rpy) -> np.ndarray:
    r, p, y = rpy
    return _rot_axis((0, 0, 1), y) @ _rot_axis((0, 1, 0), p) @ _rot_axis((1, 0, 0), r)


_FIXED = [(np.asarray(xyz, np.float64), _rpy(rpy), ax) for xyz, rpy, ax in JOINT_ORIGINS]
_FLANGE_P, _FLANGE_R = np.asarray(FLANGE[0], np.float64), _rpy(FLANGE[1])


def _chain(q):
    """Forward pass: flange position, rotation, and every joint's world origin and axis."""
    q = np.asarray(q, dtype=np.float64).reshape(7)
    r, p = np.eye(3), np.zeros(3)
    origins, axes = np.zeros((7, 3)), np.zeros((7, 3))
    for i, ((xyz, r_fixed, axis), a) in enumerate(zip(_FIXED, q)):
        p = p + r @ xyz
        r = r @ r_fixed
        origins[i], axes[i] = p, r @ np.asarray(axis, np.float64)  # the joint axis is unchanged by its own rotation
        r = r @ _rot_axis(axis, a)
    p = p + r @ _FLANGE_P
    r = r @ _FLANGE_R
    return p, r, origins, axes


def fk(q) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles [7] -> (TCP = flange position [3] in m, rotation matrix [3, 3]) in the base frame."""
    p, r, _, _ = _chain(q)
    return p, r


def jacobian(q) -> np.ndarray:
    """Geometric Jacobian [6, 7] (rows: linear velocity, angular velocity) of the flange."""
    p, _, origins, axes = _chain(q)
    return np.concatenate([np.cross(axes, p - origins).T, axes.T])


def _orientation_error(r, target_r) -> np.ndarray:
    """Rotation vector taking r to target_r (world frame); exact, also near 180 degrees."""
    qw, *qv = matrix_to_quat(target_r @ r.T)
    qv = np.asarray(qv)
    s = np.linalg.norm(qv)
    if s < 1e-12:
        return np.zeros(3)
    return 2.0 * np.arctan2(s, qw) * qv / s


def _dls(jac, err, damping) -> np.ndarray:
    return jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), err)


def ik(
    target_p, target_r, q0, iters: int = 100, damping: float = 1e-3, max_step: float = 0.2, tol: float = 1e-7
) -> np.ndarray:
    """Damped least squares from the seed `q0` (use the current joints) on position + orientation error, clamped
    to the joint limits every iteration. Each iteration's joint step is at most `max_step` rad (robust far from
    the solution); unreachable targets return the closest configuration found."""
    q = np.clip(np.asarray(q0, dtype=np.float64).copy(), Q_LOW, Q_HIGH)
    target_p, target_r = np.asarray(target_p, np.float64), np.asarray(target_r, np.float64)
    best_q, best_err, stalled = q.copy(), np.inf, 0
    for _ in range(iters):
        p, r, origins, axes = _chain(q)
        err = np.concatenate([target_p - p, _orientation_error(r, target_r)])
        norm = float(np.linalg.norm(err))
        stalled = stalled + 1 if norm > best_err * (1 - 1e-3) else 0
        if norm < best_err:
            best_q, best_err = q.copy(), norm
        if norm < tol or stalled >= 5:  # converged, or an unreachable target that stopped improving
            break
        jac = np.concatenate([np.cross(axes, p - origins).T, axes.T])
        dq = _dls(jac, err, damping)
        # A joint at its limit that the step pushes further out is frozen and the rest re-solved (the other joints
        # take over its share instead of losing it to the clamp).
        blocked = ((q <= Q_LOW + 1e-9) & (dq < 0)) | ((q >= Q_HIGH - 1e-9) & (dq > 0))
        if blocked.any():
            dq = _dls(jac * ~blocked, err, damping)
        scale = np.max(np.abs(dq)) / max_step
        if scale > 1.0:
            dq /= scale
        q = np.clip(q + dq, Q_LOW, Q_HIGH)
    return best_q
