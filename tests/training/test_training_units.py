"""Small pure-logic units: LoRA trainable rule for torch names, LR schedule parity, multi-host CLI flags."""

import importlib.util
import os
import re

import numpy as np
import pytest

from openpi.training import train_pytorch

NAMES = [
    "paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight",
    "paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight",
    "paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.lora_a",
    "paligemma_with_expert.gemma_expert.model.layers.0.self_attn.q_proj.weight",
    "paligemma_with_expert.gemma_expert.model.layers.0.self_attn.q_proj.lora_a",
    "action_in_proj.weight",
]


class _Cfg:
    def __init__(self, pali, expert):
        self.paligemma_variant, self.action_expert_variant = pali, expert


@pytest.mark.parametrize(
    ("pali", "expert", "trainable"),
    [
        ("gemma_2b_lora", "gemma_300m_lora", [1, 0, 1, 0, 1, 1]),
        ("gemma_2b_lora", "gemma_300m", [1, 0, 1, 1, 1, 1]),
        ("gemma_2b", "gemma_300m_lora", [1, 1, 1, 0, 1, 1]),
    ],
)
def test_lora_trainable_regex_mirrors_jax_freeze_filter(pali, expert, trainable):
    pat = re.compile(train_pytorch.default_trainable_regex(_Cfg(pali, expert)))
    assert [int(bool(pat.match(n))) for n in NAMES] == trainable
    assert train_pytorch.default_trainable_regex(_Cfg("gemma_2b", "gemma_300m")) is None


def test_torch_lr_matches_optax_schedule():
    from openpi.training import optimizer

    sched = optimizer.CosineDecaySchedule(warmup_steps=10, peak_lr=1e-3, decay_steps=100, decay_lr=1e-4)
    fn = sched.create()
    for step in (0, 5, 10, 50, 100, 150):
        np.testing.assert_allclose(train_pytorch.lr_at(sched, step), float(fn(step)), rtol=1e-6)


def test_flow_noise_and_time_do_not_depend_on_rank_count():
    n1, t1 = train_pytorch.flow_noise_and_time(3, 7, 8, (4, 2), 0, 1)
    parts = [train_pytorch.flow_noise_and_time(3, 7, 8, (4, 2), r, 2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), n1)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), t1)
    assert float(t1.min()) >= 0.001 and float(t1.max()) <= 1.0


def test_train_cli_moves_multihost_flags_to_env(repo_root, monkeypatch):
    spec = importlib.util.spec_from_file_location("train_script", repo_root / "scripts" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for k in ("OPENPI_COORDINATOR_ADDRESS", "OPENPI_NUM_PROCESSES", "OPENPI_PROCESS_ID"):
        monkeypatch.delenv(k, raising=False)
    rest, _ = mod._pop_multihost_flags(
        ["debug", "--coordinator-address", "10.0.0.1:1234", "--num_processes=2", "--process-id=1", "--exp-name=x"]
    )
    assert rest == ["debug", "--exp-name=x"]
    assert os.environ["OPENPI_COORDINATOR_ADDRESS"] == "10.0.0.1:1234"
    assert os.environ["OPENPI_NUM_PROCESSES"] == "2" and os.environ["OPENPI_PROCESS_ID"] == "1"
