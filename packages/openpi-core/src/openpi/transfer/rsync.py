"""rsync wrapper for machine-to-machine copies without the hub (resumable, checksummed)."""

from __future__ import annotations

import shutil
import subprocess


def rsync_command(
    src: str,
    dest: str,
    *,
    checksum: bool = True,
    delete: bool = False,
    dry_run: bool = False,
    bwlimit_kbps: int | None = None,
    ssh_port: int | None = None,
) -> list[str]:
    """Build the rsync argv.

    -a keeps permissions/times, --partial keeps half-sent files so a rerun continues them, --append-verify
    resumes partial files and re-checks the whole file checksum, --checksum compares content (not just
    size+mtime) to decide what to send, --info=progress2 prints one overall progress/ETA line.
    A trailing '/' on src copies the folder's contents (rsync semantics); without it, the folder itself.
    """
    if not src or not dest:
        raise ValueError("rsync needs --src and --dest (local path or user@host:/path)")
    cmd = ["rsync", "-a", "-h", "--partial", "--append-verify", "--info=progress2,stats1"]
    if checksum:
        cmd.append("--checksum")
    if delete:
        cmd.append("--delete")
    if dry_run:
        cmd += ["--dry-run", "--itemize-changes"]
    if bwlimit_kbps:
        cmd.append(f"--bwlimit={int(bwlimit_kbps)}")
    if ssh_port:
        cmd += ["-e", f"ssh -p {int(ssh_port)}"]
    return [*cmd, src, dest]


def run_rsync(src: str, dest: str, **kwargs) -> int:
    if shutil.which("rsync") is None:
        raise FileNotFoundError("rsync is not installed: `sudo apt-get install rsync` (on both machines).")
    cmd = rsync_command(src, dest, **kwargs)
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)
