"""robot_piper."""
