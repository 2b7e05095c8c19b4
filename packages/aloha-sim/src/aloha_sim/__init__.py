"""aloha_sim."""
