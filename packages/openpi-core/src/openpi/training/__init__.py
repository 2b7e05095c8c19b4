"""Training: configs, data loading, weight loading, checkpoints, trainers."""
