"""Rotation helpers: quaternions (w, x, y, z as Flexiv reports them) and the continuous rotation-6D
representation (the first two COLUMNS of the rotation matrix: r11 r21 r31 r12 r22 r32)."""

from __future__ import annotations

import numpy as np


def quat_to_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    t = np.trace(m)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


def matrix_to_rot6d(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[:, 0], m[:, 1]])


def rot6d_to_matrix(r6) -> np.ndarray:
    """Gram-Schmidt: any 6-vector (e.g. a network output) becomes a proper rotation matrix."""
    a1, a2 = np.asarray(r6[:3], dtype=np.float64), np.asarray(r6[3:6], dtype=np.float64)
    b1 = a1 / np.linalg.norm(a1)
    a2 = a2 - np.dot(b1, a2) * b1
    b2 = a2 / np.linalg.norm(a2)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=1)


def pose7_to_pose9(pose7) -> np.ndarray:
    """[x y z qw qx qy qz] -> [x y z r6d(6)]."""
    pose7 = np.asarray(pose7, dtype=np.float64)
    return np.concatenate([pose7[:3], matrix_to_rot6d(quat_to_matrix(pose7[3:7]))])


def pose9_to_pose7(pose9) -> np.ndarray:
    pose9 = np.asarray(pose9, dtype=np.float64)
    return np.concatenate([pose9[:3], matrix_to_quat(rot6d_to_matrix(pose9[3:9]))])


def quat_continuous(q, reference) -> np.ndarray:
    """`q` or `-q` (the same rotation), whichever is closer to `reference` (dot >= 0): successive quaternions sent
    to a controller never jump to the other hemisphere. `reference=None` returns `q` unchanged."""
    q = np.asarray(q, dtype=np.float64)
    if reference is None:
        return q.copy()
    return -q if float(np.dot(q, np.asarray(reference, dtype=np.float64))) < 0 else q.copy()


def make_quat_sequence_continuous(quats) -> np.ndarray:
    """[T, 4] quaternions -> sign-continuous copy: q_t is flipped when dot(q_t, q_{t-1}) < 0 (after the flips of
    earlier steps), so the sequence never jumps between q and -q. The first quaternion is kept as is."""
    quats = np.array(quats, dtype=np.float64, copy=True)
    if quats.ndim != 2 or quats.shape[1] != 4:
        raise ValueError(f"quats has shape {quats.shape}; expected [T, 4] (w, x, y, z)")
    for t in range(1, len(quats)):
        if np.dot(quats[t], quats[t - 1]) < 0:
            quats[t] = -quats[t]
    return quats
