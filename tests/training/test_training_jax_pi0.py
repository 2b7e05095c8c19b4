"""The JAX trainer on the real tiny pi0.5 model (dummy Gemma, tiny SigLIP): the loss goes down on a fixed batch,
and the params/ it writes load back through restore_params + Pi0Config.load and sample actions."""

import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import training_toy as toy

from openpi.models import model as _model
from openpi.models import pi0_config
from openpi.training import checkpoints
from openpi.training import train_jax


def _fixed_batch_factory(model_config, batch_size):
    obs_spec, act_spec = model_config.inputs_spec(batch_size=batch_size)
    rng = np.random.default_rng(0)

    def leaf(s):
        if s.dtype == np.float32:
            return rng.uniform(-1, 1, s.shape).astype(np.float32)
        if s.dtype == np.int32:
            return rng.integers(1, 1000, s.shape).astype(np.int32)
        return np.ones(s.shape, bool)

    obs = jax.tree.map(leaf, obs_spec)
    actions = rng.uniform(-1, 1, act_spec.shape).astype(np.float32)

    def factory(start):
        while True:
            yield obs, actions

    return factory


@pytest.mark.slow
def test_tiny_pi05_trains_and_checkpoint_serves(tmp_path):
    mc = pi0_config.Pi0Config(
        pi05=True,
        paligemma_variant="dummy",
        action_expert_variant="dummy",
        vision_variant="tiny",
        paligemma_vocab_size=1024,
        action_horizon=10,
    )
    cfg = toy.ToyTrainConfig(
        checkpoint_base_dir=str(tmp_path),
        name="tiny_pi05",
        model=mc,
        batch_size=2,
        num_train_steps=6,
        save_interval=3,
        keep_period=3,
        lr_schedule=toy.ToySchedule(peak_lr=3e-3),
    )
    res = train_jax.train(cfg, data_factory=_fixed_batch_factory(mc, 2), progress=False)
    assert np.mean([res.losses[s] for s in (3, 4, 5)]) < 0.92 * np.mean([res.losses[s] for s in (0, 1, 2)]), res.losses
    assert checkpoints.list_steps(cfg.checkpoint_dir) == [3, 6]
    params = _model.restore_params(cfg.checkpoint_dir / "6" / "params", restore_type=np.ndarray)
    assert params["PaliGemma"]["llm"]["embedder"]["input_embedding"].shape[0] == 1024
    model = mc.load(params)
    obs = jax.tree.map(lambda x: x[:1], next(_fixed_batch_factory(mc, 1)(0))[0])
    actions = model.sample_actions(jax.random.key(0), obs, num_steps=2)
    assert actions.shape == (1, 10, 32) and np.all(np.isfinite(np.asarray(actions)))
