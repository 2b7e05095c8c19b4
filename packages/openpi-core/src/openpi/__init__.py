"""openpi."""
