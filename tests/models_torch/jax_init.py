"""Test helper: a PyTorch model holding the JAX model's initialisation (imports jax and flax, so it lives with the
tests, not in openpi.models_pytorch; from-scratch torch training uses the torch-native init of the constructor)."""

from flax import nnx
import jax

from openpi.models_pytorch import convert
from openpi.models_pytorch.pi0_pytorch import PI0Pytorch


def torch_model_from_jax_init(config, seed: int = 0) -> PI0Pytorch:
    """PI0Pytorch(config) loaded with `config.create(jax.random.key(seed))`'s params through `convert.jax_to_torch`."""
    params = nnx.state(config.create(jax.random.key(seed))).to_pure_dict()
    model = PI0Pytorch(config)
    model.load_state_dict(convert.jax_to_torch(params, config))
    return model
