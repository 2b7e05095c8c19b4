"""Both trainers check the data before any weights, and DRY_RUN on every registry config.

The data config, the dataset's format, the norm stats and the first batch come before the checkpoint dir and the
weights (a config whose weight loader points at a path that does not exist proves the order: that error never
shows). `--dry-run` prints the abstract train state and exits: nothing is written, nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import dry_run_data

from openpi.training import config as _config
from openpi.training import optimizer as _optimizer
from openpi.training import preflight
from openpi.training import train_jax
from openpi.training import train_pytorch
from openpi.training import weight_loaders

# One config per data format / model size runs in `make test-fast`; the others (same code paths) are marked slow.
FAST = {
    "debug_pi05",
    "debug_pi05_aloha_sim",
    "pi0_aloha_sim",
    "pi05_aloha",
    "pi05_flexiv_pose_train",
    "pi05_piper_pick_cube_lora",
}
ALL_CONFIGS = [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in sorted(_config.list_configs())]
# Inference configs without a prompt (as upstream: no default_prompt; the serving client sends it).
NO_PROMPT = {"pi0_aloha", "pi05_aloha"}


@pytest.fixture(scope="module")
def homes(tmp_path_factory, golden_dir):
    """HF_LEROBOT_HOME with one small dataset per format (every registry name), OPENPI_DATA_HOME with the tiny
    tokenizer where PaliGemma's is cached, and every config's norm stats."""
    import lerobot.datasets.lerobot_dataset as ld
    import lerobot.utils.constants as lc

    root = tmp_path_factory.mktemp("dry_run")
    lerobot_home, data_home, assets = root / "lerobot", root / "openpi_data", root / "assets"
    tok = data_home / "big_vision" / "paligemma_tokenizer.model"
    tok.parent.mkdir(parents=True)
    shutil.copy(golden_dir / "tiny_spm.model", tok)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_LEROBOT_HOME", str(lerobot_home))
        mp.setenv("OPENPI_DATA_HOME", str(data_home))
        mp.setattr(lc, "HF_LEROBOT_HOME", lerobot_home)
        mp.setattr(ld, "HF_LEROBOT_HOME", lerobot_home, raising=False)
        dry_run_data.prepare(lerobot_home, assets)
        yield {"lerobot": lerobot_home, "data": data_home, "assets": assets, "root": root}


def _counts(out: str) -> tuple[int, int]:
    m = re.search(r"parameters: total ([\d,]+).*trainable ([\d,]+)", out)
    assert m, out
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def _no_weights(data_home: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(data_home)) for p in data_home.rglob("params"))


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_dry_run_every_config_both_trainers(name, homes, tmp_path, capsys):
    cfg = dry_run_data.for_test(
        _config.get_config(name), homes["assets"], exp_name="dry", checkpoint_base_dir=str(tmp_path / "ck")
    )
    if name in NO_PROMPT:
        # the ALOHA inference configs (upstream's: the client sends the prompt): the preflight names the missing
        # prompt and the flag, before the first batch (no tokenizer error) and before any weights
        for trainer, run in _both_trainers(cfg, dry_run=True):
            with pytest.raises(ValueError, match=f"config '{name}' has no prompt to train with") as e:
                run()
            assert '--data.default-prompt "<task>"' in str(e.value), trainer
            assert not getattr(e.value, "__notes__", None), trainer  # not from the first batch
        # given the task the way the message says, the dry run passes
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, default_prompt="fold the towel"))
    assert train_jax.train(cfg, dry_run=True, progress=False) is None
    jax_out = capsys.readouterr().out
    assert train_pytorch.train(cfg, dry_run=True, options=train_pytorch.TorchOptions(device="cpu")) is None
    torch_out = capsys.readouterr().out
    for out in (jax_out, torch_out):
        assert "no weights were downloaded or loaded" in out, out
        assert re.search(r"actions: \(2, \d+, \d+\) float\d\d", out), out
        assert re.search(r"memory per (device|rank).*: [\d.]+ [KMG]?i?B", out), out
    jax_total, jax_trainable = _counts(jax_out)
    torch_total, torch_trainable = _counts(torch_out)
    assert jax_total == torch_total > 0  # the same parameter tree in both frameworks
    assert jax_trainable == torch_trainable > 0  # the LoRA freeze rule is the same too
    assert (jax_trainable < jax_total / 5) if "lora" in name else (jax_trainable == jax_total)
    assert not (tmp_path / "ck").exists()  # no checkpoint dir created (an --overwrite would not wipe it)
    assert _no_weights(homes["data"]) == []


def test_only_the_aloha_inference_configs_lack_a_prompt():
    """pi0_aloha / pi05_aloha keep upstream's defaults (no default_prompt); every other real-data config has a prompt
    source. Their preflight says so before the dataset is looked at; the serving side: tests/serving."""
    lacking = set()
    for name, cfg in _config.list_configs().items():
        data_cfg = preflight.build_data_config(cfg)
        if data_cfg is not None and not preflight.is_fake(data_cfg) and not preflight.has_prompt_source(data_cfg):
            lacking.add(name)
            assert cfg.data.default_prompt is None
    assert lacking == NO_PROMPT
    cfg = _config.get_config("pi05_aloha")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, repo_id="no_such_dataset"))
    with pytest.raises(ValueError, match="'pi05_aloha' has no prompt to train with.*client sends 'prompt'"):
        preflight.check_data(cfg, preflight.build_data_config(cfg))  # the missing prompt is reported first
    given = dataclasses.replace(cfg.data, default_prompt="fold the towel")
    assert preflight.has_prompt_source(preflight.build_data_config(dataclasses.replace(cfg, data=given)))


def _config_with_missing_weights(homes, tmp_path, **overrides):
    cfg = _config.get_config("pi05_piper_pick_cube")
    return dry_run_data.for_test(
        cfg,
        homes["assets"],
        exp_name="x",
        checkpoint_base_dir=str(tmp_path / "ck"),
        weight_loader=weight_loaders.CheckpointWeightLoader(str(tmp_path / "no_such_checkpoint" / "params")),
        pytorch_weight_path=str(tmp_path / "no_such_checkpoint"),
        **overrides,
    )


def _both_trainers(cfg, dry_run=False):
    yield "jax", lambda: train_jax.train(cfg, progress=False, dry_run=dry_run)
    yield (
        "pytorch",
        lambda: train_pytorch.train(
            cfg, options=train_pytorch.TorchOptions(device="cpu"), progress=False, dry_run=dry_run
        ),
    )


def test_data_checked_before_weights(homes, tmp_path):
    """Missing norm stats, a v2.1 dataset, a data config that cannot be built, an unknown optimizer: each fails
    naming its fix, before the (missing) weights are looked at and before the checkpoint dir is created."""
    no_stats = _config_with_missing_weights(homes, tmp_path, assets_base_dir=str(tmp_path / "empty_assets"))
    bad_data = _config_with_missing_weights(homes, tmp_path)
    bad_data = dataclasses.replace(bad_data, data=dataclasses.replace(bad_data.data, robot="ur5"))
    wrong_repo = _config_with_missing_weights(homes, tmp_path)
    wrong_repo = dataclasses.replace(wrong_repo, data=dataclasses.replace(wrong_repo.data, repo_id="piper_typo"))

    @dataclasses.dataclass(frozen=True)
    class Lion:
        lr: float = 1e-4

    bad_opt = dataclasses.replace(_config_with_missing_weights(homes, tmp_path), optimizer=Lion())
    old = homes["lerobot"] / "piper_v21"
    shutil.copytree(homes["lerobot"] / "piper_lerobot_data", old, symlinks=True)
    info = old / "meta" / "info.json"
    info.write_text(info.read_text().replace('"v3.0"', '"v2.1"'))
    v21 = _config_with_missing_weights(homes, tmp_path)
    v21 = dataclasses.replace(v21, data=dataclasses.replace(v21.data, repo_id="piper_v21"))
    cases = [
        (no_stats, FileNotFoundError, r"make norm-stats CONFIG=pi05_piper_pick_cube"),
        (bad_data, ValueError, r"robot='ur5'"),
        (wrong_repo, FileNotFoundError, r"'piper_typo' not found.*HF_LEROBOT_HOME"),
        (bad_opt, TypeError, r"optimizer config .*Lion is not supported.*AdamW"),
        (v21, RuntimeError, r"v2\.1.*make convert-dataset REPO=piper_v21"),
    ]
    for cfg, exc, pattern in cases:
        for trainer, run in _both_trainers(cfg):
            with pytest.raises(exc, match=pattern):
                run()
            assert not (tmp_path / "ck").exists(), trainer
    # and the weights are the next thing each trainer reads
    for trainer, run in _both_trainers(_config_with_missing_weights(homes, tmp_path)):
        with pytest.raises(FileNotFoundError, match="no_such_checkpoint"):
            run()
        assert (tmp_path / "ck" / "pi05_piper_pick_cube" / "x").is_dir(), trainer
        shutil.rmtree(tmp_path / "ck")


def test_known_optimizers_build_in_both_trainers():
    import torch

    params = [torch.nn.Parameter(torch.zeros(3))]
    adamw, clip = train_pytorch.make_optimizer(_optimizer.AdamW(b1=0.8), params, 1e-3)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.95) and clip == 1.0
    sgd, clip = train_pytorch.make_optimizer(_optimizer.SGD(momentum=0.5), params, 1e-3)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.5 and clip is None


@pytest.mark.slow
@pytest.mark.parametrize("target", ["train", "train-pytorch"])
def test_make_train_dry_run(target, homes, repo_root, tmp_path):
    """The make targets end to end: DRY_RUN=1 prints the report, exits 0, writes no checkpoint."""
    env = {
        **os.environ,
        "HF_LEROBOT_HOME": str(homes["lerobot"]),
        "OPENPI_DATA_HOME": str(homes["data"]),
        "JAX_PLATFORMS": "cpu",
    }
    args = f"--batch-size 2 --num-workers 0 --assets-base-dir {homes['assets']} --checkpoint-base-dir {tmp_path}/ck"
    proc = subprocess.run(
        ["make", "-s", target, "CONFIG=pi05_flexiv_pose_train", "EXP=dry", "DRY_RUN=1", f"ARGS={args}"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no weights were downloaded or loaded" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ck").exists()
    assert _no_weights(homes["data"]) == []
