"""Policy serving over websockets (wire-compatible with upstream openpi)."""
