"""Move datasets and models between machines (README-data_upload.md).

  python scripts/transfer.py upload-dataset --repo me/piper_pick_cube --path datasets/piper_lerobot_data [--dry-run]
  python scripts/transfer.py upload-model --ckpt checkpoints/pi05_piper_pick_cube/exp/29999 --repo me/pi05_piper
  python scripts/transfer.py download-dataset --repo me/piper_pick_cube      # -> $HF_LEROBOT_HOME/piper_pick_cube
  python scripts/transfer.py download-model --repo me/pi05_piper             # -> checkpoints/pi05_piper
  python scripts/transfer.py package --ckpt checkpoints/<config>/<exp>/<step> # params+assets, no train_state
  python scripts/transfer.py pack --ckpt checkpoints/<config>/<exp>/<step> --config-name <config> --out my_policy
  python scripts/transfer.py unpack --packed my_policy --out checkpoints/my_policy   # -> checkpoints/my_policy/<step>
  python scripts/transfer.py rsync --src datasets/x/ --dest user@host:/data/x/

Hub calls honour HF_ENDPOINT (mirror) and HF_TOKEN. Exit code 2 with a one-line fix on user-fixable errors.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Literal

import tyro

from openpi.transfer import hub
from openpi.transfer import packaging
from openpi.transfer import packed
from openpi.transfer import rsync as _rsync

Mode = Literal["auto", "folder", "large"]


def upload_dataset(
    repo: str,
    path: pathlib.Path,
    private: bool = True,
    force_mode: Mode = "auto",
    dry_run: bool = False,
    create_repo: bool = True,
    num_workers: int | None = None,
) -> None:
    """Upload a (LeRobot) dataset folder to a hub dataset repo.

    Args:
        repo: Hub dataset repo id, <user or org>/<name>.
        path: Local dataset folder, e.g. datasets/piper_lerobot_data.
        private: Create the repo private (default) or public (--no-private).
        force_mode: auto picks upload_large_folder above 1 GiB or 500 files, else upload_folder.
        dry_run: Only print the files, total size and mode.
        create_repo: Create the repo if missing (--no-create-repo: fail if it does not exist).
        num_workers: Workers for upload_large_folder (default: cores - 2, at least 2).
    """
    hub.upload_folder(
        path,
        repo,
        repo_type="dataset",
        private=private,
        mode=force_mode,
        dry_run=dry_run,
        create_repo=create_repo,
        num_workers=num_workers,
    )


def upload_model(
    ckpt: pathlib.Path,
    repo: str,
    config_name: str | None = None,
    out: pathlib.Path | None = None,
    verify: bool = True,
    overwrite: bool = False,
    delete_train_state: bool = False,
    private: bool = True,
    force_mode: Mode = "auto",
    dry_run: bool = False,
    create_repo: bool = True,
) -> None:
    """Package a training step dir (params+assets or model.safetensors+config.json+assets, no train_state),
    check that it loads like serve_policy would, and upload the package to a hub model repo.

    Args:
        ckpt: Step dir, e.g. checkpoints/pi05_piper_pick_cube/my_exp/29999.
        repo: Hub model repo id, <user or org>/<name>.
        config_name: Training config used to verify loading (default: inferred from checkpoints/<config>/...).
        out: Package dir (default checkpoints/<config>/<exp>_package/<step>).
        verify: Load the package with create_trained_policy before uploading (--no-verify skips).
        overwrite: Replace an existing package dir.
        delete_train_state: After a successful upload, delete train_state/ (or optimizer.pt) from --ckpt.
        private: Create the repo private (default).
        force_mode: auto | folder | large (see upload-dataset).
        dry_run: Print what the package would contain and its size; write and send nothing.
        create_repo: Create the repo if missing.
    """
    if dry_run:
        files = packaging.package_files(ckpt)
        plan = hub.UploadPlan(ckpt, tuple(files), "folder" if sum(s for _, s in files) < hub.LARGE_BYTES else "large")
        print(plan.describe())
        print(f"[dry run] would package {ckpt} (without train_state) and upload to model repo {repo}.")
        return
    hub._check_repo_id(repo)
    hub.require_token()
    pkg = packaging.package_checkpoint(ckpt, out, overwrite=overwrite)
    print(f"Packaged {ckpt} -> {pkg}")
    if verify:
        name = config_name or packaging.infer_config_name(ckpt)
        if name is None:
            raise hub.TransferError(
                f"cannot infer the training config from {ckpt}; pass --config-name (or --no-verify)."
            )
        packaging.verify_loadable(pkg, name)
        print(f"Verified: {pkg} loads with config {name!r} (create_trained_policy).")
    hub.upload_folder(pkg, repo, repo_type="model", private=private, mode=force_mode, create_repo=create_repo)
    if delete_train_state:
        for p in packaging.strip_train_state_in_place(ckpt):
            print(f"Deleted {p}")


def download_dataset(repo: str, out: pathlib.Path | None = None, revision: str | None = None) -> None:
    """Download a hub dataset repo (default into $HF_LEROBOT_HOME/<name>, i.e. datasets/<name>).

    Args:
        repo: Hub dataset repo id.
        out: Destination folder.
        revision: Branch, tag or commit (default main).
    """
    hub.download(repo, out or hub.default_dataset_dir(repo), repo_type="dataset", revision=revision)


def download_model(repo: str, out: pathlib.Path | None = None, revision: str | None = None) -> None:
    """Download a hub model repo (default into checkpoints/<name>); serve it with --policy.dir <that dir>.

    Args:
        repo: Hub model repo id.
        out: Destination folder.
        revision: Branch, tag or commit (default main).
    """
    hub.download(repo, out or hub.default_model_dir(repo), repo_type="model", revision=revision)


def package(
    ckpt: pathlib.Path,
    out: pathlib.Path | None = None,
    config_name: str | None = None,
    verify: bool = True,
    overwrite: bool = False,
) -> None:
    """Make the inference package of a step dir without uploading (original untouched).

    Args:
        ckpt: Step dir.
        out: Package dir (default checkpoints/<config>/<exp>_package/<step>).
        config_name: Config for the load check (default: inferred from the path).
        verify: Load the package with create_trained_policy.
        overwrite: Replace an existing package dir.
    """
    pkg = packaging.package_checkpoint(ckpt, out, overwrite=overwrite)
    print(f"Packaged {ckpt} -> {pkg}")
    name = config_name or packaging.infer_config_name(ckpt)
    if verify and name:
        packaging.verify_loadable(pkg, name)
        print(f"Verified: loads with config {name!r}.")
    elif verify:
        print("Not verified: pass --config-name to check loading.")


def pack(ckpt: pathlib.Path, config_name: str, out: pathlib.Path, note: str = "") -> None:
    """Pack a JAX step dir small enough to ship in a repo: params in bfloat16, zip-compressed, + norm stats.

    Args:
        ckpt: JAX step dir (params/ and assets/).
        config_name: The config it was trained with (recorded in the manifest; serve with it).
        out: Packed dir (replaced if it exists).
        note: Free text for the manifest, e.g. how the checkpoint was trained and what it scored.
    """
    manifest = packed.pack(ckpt, out, config=config_name, note=note)
    size = (out / packed.PARAMS_FILE).stat().st_size
    print(f"Packed {manifest['num_params']:,} parameters of {ckpt} -> {out} ({size / 1e6:.2f} MB)")


def unpack(packed_dir: pathlib.Path, out: pathlib.Path) -> None:
    """Unpack a packed checkpoint into a servable step dir <out>/<step> (sha256 and shapes checked).

    Args:
        packed_dir: Dir written by `pack` (manifest.json, params.bf16.npz, assets/).
        out: Checkpoint dir that receives <step>/params and <step>/assets.
    """
    step_dir = packed.unpack(packed_dir, out)
    config = packed.read_manifest(packed_dir)["config"]
    print(f"Unpacked {packed_dir} -> {step_dir}; serve it with --policy.config={config} --policy.dir={step_dir}")


def rsync(
    src: str,
    dest: str,
    checksum: bool = True,
    delete: bool = False,
    dry_run: bool = False,
    bwlimit_kbps: int | None = None,
    ssh_port: int | None = None,
) -> None:
    """rsync between machines without the hub: resumable (--partial --append-verify), checksummed.

    Args:
        src: Source (local path or user@host:/path). A trailing '/' copies the contents.
        dest: Destination (local path or user@host:/path).
        checksum: Compare file contents, not size+mtime (--no-checksum is faster on huge trees).
        delete: Delete files in dest that are not in src.
        dry_run: Show what would be transferred.
        bwlimit_kbps: Bandwidth limit in KB/s.
        ssh_port: SSH port if not 22.
    """
    rc = _rsync.run_rsync(
        src, dest, checksum=checksum, delete=delete, dry_run=dry_run, bwlimit_kbps=bwlimit_kbps, ssh_port=ssh_port
    )
    if rc != 0:
        raise hub.TransferError(f"rsync exited with {rc}; rerun the same command to resume (partial files kept).")


COMMANDS = {
    "upload-dataset": upload_dataset,
    "upload-model": upload_model,
    "download-dataset": download_dataset,
    "download-model": download_model,
    "package": package,
    "pack": pack,
    "unpack": unpack,
    "rsync": rsync,
}


def main(argv: list[str] | None = None) -> int:
    try:
        tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv)
    except hub.TransferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
