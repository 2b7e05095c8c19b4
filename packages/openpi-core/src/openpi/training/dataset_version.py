"""LeRobot dataset format versions: this project reads v3.0; older local datasets are named with their upgrade step.

LeRobot 0.4 (the version installed here) reads and writes `codebase_version` v3.0 (chunked parquet/mp4 files,
`meta/episodes/` as parquet). Datasets recorded with the seed's fork (openpi pinned an older LeRobot) are v2.1
(`meta/episodes.jsonl`, one parquet and one mp4 per episode) or even v2.0 (no `meta/episodes_stats.jsonl`).
"""

from __future__ import annotations

import json
import os
import pathlib

SUPPORTED = "v3.0"


class OldDatasetVersionError(RuntimeError):
    """A local LeRobot dataset in a format older than v3.0; the message names the command that upgrades it."""


def lerobot_home() -> pathlib.Path:
    """HF_LEROBOT_HOME as LeRobot resolves it (the make targets set it to ./datasets)."""
    from lerobot.utils import constants  # lerobot is heavy; only the dataset paths need it

    return pathlib.Path(constants.HF_LEROBOT_HOME)


def convert_command(repo_id: str, src: pathlib.Path | None = None) -> str:
    return f"make convert-dataset REPO={repo_id}" + (f" SRC={src}" if src is not None else "")


def read_version(root: pathlib.Path) -> str | None:
    """`codebase_version` of the dataset at `root`, or None when there is no meta/info.json."""
    info = pathlib.Path(root) / "meta" / "info.json"
    if not info.exists():
        return None
    version = json.loads(info.read_text()).get("codebase_version")
    if not isinstance(version, str):
        raise ValueError(f"{info}: no codebase_version string; not a LeRobot dataset's info.json")
    return version


def upgrade_hint(version: str, repo_id: str, root: pathlib.Path) -> str:
    """What to run for a dataset of `version` (empty for v3.x)."""
    if version.startswith("v3."):
        return ""
    if version == "v2.1":
        return (
            f"LeRobot dataset {repo_id!r} at {root} is {version}; this project reads {SUPPORTED}. Convert it once, "
            f"locally, with LeRobot's own converter: `{convert_command(repo_id)}` (docs/data.md, 'Old datasets')."
        )
    if version == "v2.0":
        return (
            f"LeRobot dataset {repo_id!r} at {root} is v2.0; this project reads {SUPPORTED}. First upgrade it to v2.1 "
            "with LeRobot's v2.0 -> v2.1 step (`python -m lerobot.datasets.v21.convert_dataset_v20_to_v21 "
            f"--repo-id={repo_id}`, shipped with lerobot 0.3.x: it writes meta/episodes_stats.jsonl), then run "
            f"`{convert_command(repo_id)}`."
        )
    return (
        f"LeRobot dataset {repo_id!r} at {root} has codebase_version {version!r}; this project reads {SUPPORTED} "
        f"(v2.1 converts with `{convert_command(repo_id)}`)."
    )


def check_local(repo_id: str, root: pathlib.Path | None = None) -> pathlib.Path | None:
    """Raise OldDatasetVersionError when the local copy of `repo_id` is older than v3.0; returns its root, or None
    when there is no local copy (LeRobot may still fetch it from the hub)."""
    root = pathlib.Path(root) if root is not None else lerobot_home() / repo_id
    version = read_version(root)
    if version is None:
        return None
    hint = upgrade_hint(version, repo_id, root)
    if hint:
        raise OldDatasetVersionError(hint)
    return root


def dataset_missing_message(repo_id: str) -> str:
    home = os.environ.get("HF_LEROBOT_HOME", str(lerobot_home()))
    return (
        f"LeRobot dataset {repo_id!r} not found: no {pathlib.Path(home) / repo_id / 'meta' / 'info.json'} "
        f"(HF_LEROBOT_HOME={home}; make targets use ./datasets). Record it, `make download-dataset REPO=...`, or set "
        "--data.repo-id to a folder under HF_LEROBOT_HOME."
    )
