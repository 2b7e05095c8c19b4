"""Flexiv Rizon client: pose (xyz + rotation-6D + gripper = 10) and qpos (7 joints + gripper = 8) modes,
driver over flexivrdk (Python 3.10/3.12 only), simulated Rizon, data collection, policy client."""

DIMS = {"qpos": 8, "pose": 10}
