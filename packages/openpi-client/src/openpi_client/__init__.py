"""openpi_client."""
