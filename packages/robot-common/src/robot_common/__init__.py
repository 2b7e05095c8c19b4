"""robot_common."""
