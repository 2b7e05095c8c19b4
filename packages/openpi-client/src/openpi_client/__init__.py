"""openpi_client: the light robot-side client for openpi policy servers (wire- and import-compatible with upstream)."""

__version__ = "0.1.0"
