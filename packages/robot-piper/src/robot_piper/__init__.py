"""AgileX Piper client: driver over piper_sdk (CAN), CAN-level simulated arm, teleop data collection, policy client."""

PIPER_STATE_DIM = 7  # 6 joints (rad) + gripper opening (m)
