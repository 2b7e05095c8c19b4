"""pi0 / pi0.5 in PyTorch: standard torch modules with upstream openpi's state_dict keys (docs/pytorch.md).

Importing this package (and loading, serving or training a torch checkpoint) never imports jax or flax."""
