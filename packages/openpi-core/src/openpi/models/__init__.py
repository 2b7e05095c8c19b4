"""pi0 / pi0.5 in JAX (flax nnx) with upstream openpi's parameter tree."""
