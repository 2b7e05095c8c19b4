"""robot_flexiv."""
