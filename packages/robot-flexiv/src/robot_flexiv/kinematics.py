"""A 7-DoF kinematic chain for the simulated Rizon (approximate link lengths; the real robot reports its own
TCP pose). Joint axes alternate z / y like the Rizon 4."""

from __future__ import annotations

import numpy as np

LINKS = np.array(
    [[0, 0, 0.155], [0, 0, 0.210], [0, 0, 0.210], [0, 0, 0.190], [0, 0, 0.200], [0, 0, 0.105], [0, 0, 0.080]]
)
AXES = "zyzyzyz"
Q_LOW = np.array([-2.79, -2.27, -2.96, -1.86, -2.96, -0.95, -2.96])
Q_HIGH = -Q_LOW
Q_HIGH[5] = 4.53
HOME = np.array([0.0, -0.7, 0.0, 1.57, 0.0, 0.7, 0.0])


def _rot(axis: str, a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _chain(q):
    """Forward pass: tcp position, rotation, and every joint's world origin and axis."""
    r, p = np.eye(3), np.zeros(3)
    origins, axes = np.zeros((7, 3)), np.zeros((7, 3))
    for i, (axis, a, link) in enumerate(zip(AXES, q, LINKS, strict=True)):
        origins[i] = p
        axes[i] = r[:, 2] if axis == "z" else r[:, 1]  # the joint axis is unchanged by its own rotation
        r = r @ _rot(axis, a)
        p = p + r @ link
    return p, r, origins, axes


def fk(q) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles [7] -> (tcp position [3], rotation matrix [3,3])."""
    p, r, _, _ = _chain(q)
    return p, r


def ik(target_p, target_r, q0, iters: int = 50, damping: float = 1e-2) -> np.ndarray:
    """Damped least squares on position + orientation error, with the geometric Jacobian of revolute joints
    (linear: axis x (tcp - origin), angular: axis)."""
    q = np.asarray(q0, dtype=np.float64).copy()
    for _ in range(iters):
        p, r, origins, axes = _chain(q)
        err_r = 0.5 * (
            np.cross(r[:, 0], target_r[:, 0]) + np.cross(r[:, 1], target_r[:, 1]) + np.cross(r[:, 2], target_r[:, 2])
        )
        err = np.concatenate([target_p - p, err_r])
        if np.linalg.norm(err) < 1e-5:
            break
        jac = np.concatenate([np.cross(axes, p - origins).T, axes.T])
        q = q + jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(6), err)
        q = np.clip(q, Q_LOW, Q_HIGH)
    return q
