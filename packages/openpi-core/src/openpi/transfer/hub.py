"""Upload / download datasets and models with the Hugging Face Hub (huggingface_hub).

Small folders go through `upload_folder` (one commit), large ones through `upload_large_folder` (multi-worker,
resumable from its local `.cache/huggingface/upload` metadata). The choice is automatic by size and file count
(`LARGE_BYTES`, `LARGE_FILES`) and can be forced with `mode="folder" | "large"`.

Every network call honours `HF_ENDPOINT` at call time (not only at import), so a mirror or a test stand-in can be
used. Errors are mapped to `TransferError` with a message that names the cause and the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import logging
import os
import pathlib
from typing import Literal

logger = logging.getLogger("openpi.transfer")

RepoType = Literal["dataset", "model"]
Mode = Literal["auto", "folder", "large"]

# Above either threshold `auto` switches to upload_large_folder.
LARGE_BYTES = 1 << 30  # 1 GiB
LARGE_FILES = 500
# Never uploaded: caches, partial downloads, VCS dirs, python caches.
IGNORE_PATTERNS = (".cache/*", "*/.cache/*", ".git/*", "*/.git/*", "*.partial", "*.lock", "*__pycache__*", "*.pyc")


class TransferError(RuntimeError):
    """A transfer failed for a reason the user can fix; the message says how."""


@dataclasses.dataclass(frozen=True)
class UploadPlan:
    folder: pathlib.Path
    files: tuple[tuple[str, int], ...]  # (path relative to folder, size in bytes)
    mode: Literal["folder", "large"]

    @property
    def total_bytes(self) -> int:
        return sum(s for _, s in self.files)

    def describe(self, *, max_lines: int = 20, assume_mb_per_s: float = 50.0) -> str:
        lines = [f"{self.folder}: {len(self.files)} files, {human_bytes(self.total_bytes)} (mode: {self.mode})"]
        for rel, size in sorted(self.files, key=lambda x: -x[1])[:max_lines]:
            lines.append(f"  {human_bytes(size):>10}  {rel}")
        if len(self.files) > max_lines:
            lines.append(f"  ... and {len(self.files) - max_lines} more files")
        eta = self.total_bytes / (assume_mb_per_s * 1e6)
        lines.append(f"Estimated upload time at {assume_mb_per_s:g} MB/s: {human_duration(eta)}")
        return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _ignored(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pat) for pat in IGNORE_PATTERNS)


def plan_upload(folder: str | os.PathLike, *, mode: Mode = "auto") -> UploadPlan:
    """List what an upload would send and pick the upload mode."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise TransferError(f"--path {folder}: not a directory. Pass the dataset/checkpoint folder to upload.")
    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not _ignored(rel):
            files.append((rel, p.stat().st_size))
    if not files:
        raise TransferError(f"--path {folder}: no files to upload (empty, or everything ignored).")
    if mode not in ("auto", "folder", "large"):
        raise TransferError(f"--force-mode {mode!r}: use auto, folder or large.")
    if mode == "auto":
        total = sum(s for _, s in files)
        mode = "large" if total >= LARGE_BYTES or len(files) >= LARGE_FILES else "folder"
    return UploadPlan(folder, tuple(files), mode)


def endpoint() -> str:
    """The hub endpoint, read from HF_ENDPOINT now (huggingface_hub only reads it at import)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _api(token: str | None = None):
    import huggingface_hub

    return huggingface_hub.HfApi(endpoint=endpoint(), token=token)


def require_token() -> str:
    import huggingface_hub

    token = huggingface_hub.get_token()
    if not token:
        raise TransferError(
            "No Hugging Face token found. Run `hf auth login` (or `huggingface-cli login`) with a WRITE token, "
            "or `export HF_TOKEN=hf_...`, then rerun."
        )
    return token


def _check_repo_id(repo_id: str) -> None:
    if not repo_id or repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise TransferError(f"--repo {repo_id!r}: expected '<user or org>/<name>', e.g. 'me/piper_pick_cube'.")


@contextlib.contextmanager
def hub_errors(repo_id: str, repo_type: str, action: str):
    """Translate huggingface_hub / requests exceptions into TransferError with a fix."""
    import huggingface_hub.errors as hf_errors
    import requests

    where = endpoint()
    try:
        yield
    except TransferError:
        raise
    except hf_errors.RepositoryNotFoundError as e:
        raise TransferError(
            f"{action}: {repo_type} repo '{repo_id}' not found on {where} (or your token cannot access it). "
            f"Check --repo, that it is a {repo_type} repo, and the token's permissions "
            "(private repos need a token with read access)."
        ) from e
    except (hf_errors.RevisionNotFoundError, hf_errors.EntryNotFoundError) as e:
        raise TransferError(f"{action}: {e}") from e
    except hf_errors.OfflineModeIsEnabled as e:
        raise TransferError(f"{action}: HF_HUB_OFFLINE=1 is set; unset it to reach {where}.") from e
    except hf_errors.HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else None
        if code in (401, 403):
            raise TransferError(
                f"{action}: the hub refused the token for '{repo_id}' (HTTP {code}). Use a token with WRITE "
                "access (`hf auth login`) and make sure you may write to that namespace."
            ) from e
        if code is not None and code >= 500:
            raise TransferError(
                f"{action}: {where} failed (HTTP {code}). Rerun the same command: finished files are skipped."
            ) from e
        raise TransferError(f"{action}: hub error: {e}") from e
    except (requests.ConnectionError, requests.Timeout, OSError) as e:
        if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        raise TransferError(
            f"{action}: network failure talking to {where} ({type(e).__name__}: {e}). Check the connection "
            "(and HF_ENDPOINT / proxy settings), then rerun the same command: it resumes where it stopped."
        ) from e


def upload_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: RepoType,
    private: bool = True,
    mode: Mode = "auto",
    dry_run: bool = False,
    create_repo: bool = True,
    commit_message: str | None = None,
    num_workers: int | None = None,
) -> UploadPlan:
    """Upload a folder to `repo_id`; returns the plan that was (or, with dry_run, would be) executed."""
    _check_repo_id(repo_id)
    plan = plan_upload(folder, mode=mode)
    print(plan.describe())
    if dry_run:
        print(f"[dry run] would upload to {repo_type} repo {repo_id} on {endpoint()} (private={private}).")
        return plan
    token = require_token()
    api = _api(token)
    with hub_errors(repo_id, repo_type, "upload"):
        if create_repo:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        else:
            api.repo_info(repo_id, repo_type=repo_type)
        ignore = list(IGNORE_PATTERNS)
        if plan.mode == "large":
            # Resumable: state lives in <folder>/.cache/huggingface/upload; a rerun continues from it.
            api.upload_large_folder(
                repo_id=repo_id,
                folder_path=plan.folder,
                repo_type=repo_type,
                private=private,
                ignore_patterns=ignore,
                num_workers=num_workers,
                print_report=False,
            )
        else:
            api.upload_folder(
                repo_id=repo_id,
                folder_path=plan.folder,
                repo_type=repo_type,
                ignore_patterns=ignore,
                commit_message=commit_message or f"Upload {plan.folder.name}",
            )
    print(
        f"Uploaded {len(plan.files)} files ({human_bytes(plan.total_bytes)}) to {endpoint()}/"
        f"{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    )
    return plan


def download(
    repo_id: str,
    out_dir: str | os.PathLike,
    *,
    repo_type: RepoType,
    revision: str | None = None,
    max_workers: int = 8,
) -> pathlib.Path:
    """snapshot_download `repo_id` into `out_dir` (resumable: finished files are skipped, partial ones continue)."""
    import huggingface_hub

    _check_repo_id(repo_id)
    out_dir = pathlib.Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with hub_errors(repo_id, repo_type, "download"):
        path = huggingface_hub.snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            local_dir=out_dir,
            endpoint=endpoint(),
            max_workers=max_workers,
            token=huggingface_hub.get_token(),
        )
    files = [p for p in out_dir.rglob("*") if p.is_file() and not _ignored(p.relative_to(out_dir).as_posix())]
    print(
        f"Downloaded {repo_type} {repo_id} -> {path} ({len(files)} files, "
        f"{human_bytes(sum(p.stat().st_size for p in files))})"
    )
    return pathlib.Path(path)


def default_dataset_dir(repo_id: str) -> pathlib.Path:
    """Where LeRobot looks for a local dataset with repo_id = <name>: $HF_LEROBOT_HOME/<name>."""
    home = os.environ.get("HF_LEROBOT_HOME")
    base = pathlib.Path(home) if home else pathlib.Path("datasets")
    return base / repo_id.split("/")[-1]


def default_model_dir(repo_id: str) -> pathlib.Path:
    return pathlib.Path("checkpoints") / repo_id.split("/")[-1]
