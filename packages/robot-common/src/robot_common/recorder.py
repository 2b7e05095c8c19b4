"""Record episodes into a LeRobot v3 dataset so that a crash never loses a finished episode.

Layout under `<home>` ($HF_LEROBOT_HOME):

    <repo_id>/                      the dataset (LeRobot v3), replaced only by a complete new version
    .<repo_id>.staging/<episode>/   every finished episode of the running session, each a small *finalized*
                                    LeRobot dataset (written as .tmp_<episode>, then renamed: atomic)
    .<repo_id>.merging/             the merged dataset being written at the end of a session
    .<repo_id>.replaced/            the previous version, only while the new one is being moved into place
    .<repo_id>.lock                 held (flock) while a session writes the dataset

At the end of a session (normal end, `q`, Ctrl-C) the staged episodes are merged with lerobot's own
`aggregate_datasets` (appended after the existing episodes with `resume`) into `.merging`, which then replaces
`<repo_id>`; the staging dir is deleted last. The merged dataset lists the staged episodes it contains in
`meta/robot_common_episodes.json`, so a crash at any point is recovered without loss or duplicates:

    python -m robot_common.recorder --repo-id <repo_id> [--root <home>]     # merge a leftover staging dir
    (or record more with --resume, which merges it first)
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import pathlib
import shlex
import shutil
import time
import uuid

import numpy as np

logger = logging.getLogger("robot_common.recorder")

MANIFEST = "meta/robot_common_episodes.json"
"""Names of the staged episodes merged into a dataset (makes recovery idempotent)."""


def lerobot_home() -> pathlib.Path:
    return pathlib.Path(os.environ.get("HF_LEROBOT_HOME", "datasets")).expanduser()


def image_feature(shape) -> dict:
    return {"dtype": "video", "shape": tuple(shape), "names": ["height", "width", "channel"]}


def vector_feature(dim: int, names=None) -> dict:
    return {"dtype": "float32", "shape": (dim,), "names": names}


class UnmergedEpisodesError(FileExistsError):
    """A previous session left finished episodes in the staging dir (crash): merge them first."""


@dataclasses.dataclass(frozen=True)
class Paths:
    home: pathlib.Path
    repo_id: str

    @property
    def final(self) -> pathlib.Path:
        return self.home / self.repo_id

    def _hidden(self, suffix: str) -> pathlib.Path:
        return self.final.parent / f".{self.final.name}.{suffix}"

    @property
    def staging(self) -> pathlib.Path:
        return self._hidden("staging")

    @property
    def merging(self) -> pathlib.Path:
        return self._hidden("merging")

    @property
    def replaced(self) -> pathlib.Path:
        return self._hidden("replaced")

    @property
    def lock(self) -> pathlib.Path:
        return self._hidden("lock")

    def recover_command(self) -> str:
        home = shlex.quote(str(self.home.absolute()))
        return f"python -m robot_common.recorder --repo-id {shlex.quote(self.repo_id)} --root {home}"


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: pathlib.Path) -> None:
    """Flush every file of `root` and the directories to disk (survive power loss, not just a crash)."""
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        _fsync_dir(path)


def _manifest(dataset: pathlib.Path) -> list[str]:
    path = dataset / MANIFEST
    return json.loads(path.read_text()) if path.exists() else []


def _repair_interrupted_swap(p: Paths) -> None:
    """Finish or undo a replacement of the dataset that a crash interrupted."""
    if not p.replaced.exists():
        return
    if p.final.exists():  # the new version is in place; the old one was about to be deleted
        shutil.rmtree(p.replaced)
    else:  # crashed between the two renames: put the previous version back (staged episodes are still there)
        os.rename(p.replaced, p.final)
        logger.warning("restored %s after an interrupted merge", p.final)


def staged_episodes(p: Paths) -> list[pathlib.Path]:
    """Finished staged episodes not yet in the dataset. Drops unfinished ones (`.tmp_*`, a crash mid-episode) and
    ones already merged (a crash after the merge, before the staging dir was removed)."""
    if not p.staging.exists():
        return []
    merged = set(_manifest(p.final)) if p.final.exists() else set()
    out = []
    for d in sorted(p.staging.iterdir()):
        if d.name.startswith(".tmp_"):
            logger.warning("dropping the unfinished episode %s (interrupted while recording)", d.name[5:])
            shutil.rmtree(d)
        elif d.name not in merged and (d / "meta" / "info.json").exists():
            out.append(d)
    return out


def _check_features(dataset: pathlib.Path, fps: int, features: dict) -> None:
    info = json.loads((dataset / "meta" / "info.json").read_text())
    theirs = info["features"]
    bad = [
        k
        for k, f in features.items()
        if k not in theirs or theirs[k]["dtype"] != f["dtype"] or tuple(theirs[k]["shape"]) != tuple(f["shape"])
    ]
    extra = [k for k in theirs if k not in features and k not in _LEROBOT_DEFAULT_KEYS]
    if bad or extra or info["fps"] != fps:
        raise ValueError(
            f"{dataset} does not match this session (fps {info['fps']} vs {fps}; differing features "
            f"{sorted(bad + extra)}): use the same --fps / --cameras.height / --cameras.width as when it was recorded, "
            "or another --repo-id"
        )


_LEROBOT_DEFAULT_KEYS = {"timestamp", "frame_index", "episode_index", "index", "task_index"}


def merge(p: Paths, staged: list[pathlib.Path], *, keep_existing: bool = True) -> pathlib.Path | None:
    """Merge `staged` episode datasets (after the existing dataset when `keep_existing`) into `p.final`,
    atomically: the merged dataset is complete on disk before the previous version is removed."""
    from lerobot.datasets.aggregate import aggregate_datasets

    keep = keep_existing and p.final.exists()
    if not staged:
        shutil.rmtree(p.staging, ignore_errors=True)
        return p.final if p.final.exists() else None
    sources = ([p.final] if keep else []) + staged
    shutil.rmtree(p.merging, ignore_errors=True)
    t0 = time.monotonic()
    aggregate_datasets([p.repo_id] * len(sources), p.repo_id, roots=sources, aggr_root=p.merging)
    names = (_manifest(p.final) if keep else []) + [d.name for d in staged]
    (p.merging / MANIFEST).write_text(json.dumps(names))
    _fsync_tree(p.merging)
    if p.final.exists():
        os.rename(p.final, p.replaced)
    os.rename(p.merging, p.final)
    shutil.rmtree(p.replaced, ignore_errors=True)
    shutil.rmtree(p.staging, ignore_errors=True)
    logger.info("merged %d episodes into %s in %.1f s", len(staged), p.final, time.monotonic() - t0)
    return p.final


class _Lock:
    def __init__(self, path: pathlib.Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "w")  # noqa: SIM115
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.close()
            raise RuntimeError(f"another session is writing this dataset (lock {path} is held)") from None

    def release(self) -> None:
        if not self._f.closed:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()


def recover(repo_id: str, root: pathlib.Path | None = None, *, overwrite: bool = False) -> pathlib.Path | None:
    """Merge the episodes a crashed session left in the staging dir into the dataset (appended, or replacing it
    with `overwrite`). Returns the dataset dir (None if there is none)."""
    p = Paths(pathlib.Path(root) if root else lerobot_home(), repo_id)
    lock = _Lock(p.lock)
    try:
        _repair_interrupted_swap(p)
        staged = staged_episodes(p)
        print(f"{len(staged)} unmerged episodes in {p.staging}")
        return merge(p, staged, keep_existing=not overwrite)
    finally:
        lock.release()


class EpisodeRecorder:
    """Writes each finished episode as its own finalized dataset (crash-safe) and merges them at `close()`.

    `resume`: keep the existing dataset and append to it, and merge the episodes a crashed session left behind.
    `overwrite`: replace the existing dataset (only once the new one is complete)."""

    def __init__(
        self,
        repo_id: str,
        *,
        fps: int,
        features: dict,
        robot_type: str,
        overwrite: bool = False,
        resume: bool = False,
        root: pathlib.Path | None = None,
    ):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset  # slow import (~10 s): not in the first step

        self._dataset_cls = LeRobotDataset
        self.paths = p = Paths(pathlib.Path(root) if root else lerobot_home(), repo_id)
        self.final = p.final
        self._lock = _Lock(p.lock)
        try:
            _repair_interrupted_swap(p)
            leftover = staged_episodes(p)
            if leftover and not resume:
                raise UnmergedEpisodesError(
                    f"{len(leftover)} finished episodes of an interrupted session are in {p.staging} and not in "
                    f"{p.final} yet. Merge them with `{p.recover_command()}`, or pass --resume to merge them and "
                    "record more."
                )
            if p.final.exists() and not (overwrite or resume):
                raise FileExistsError(
                    f"{p.final} exists; pass --resume to append episodes to it, --overwrite to replace it, "
                    "or choose another --repo-id"
                )
            if p.final.exists() and resume and not overwrite:
                _check_features(p.final, fps, features)
            for d in leftover:
                _check_features(d, fps, features)
        except BaseException:
            self._lock.release()
            raise
        self._fps, self._features, self._robot_type = fps, features, robot_type
        self._keep_existing = not overwrite
        self._session = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._staged: list[pathlib.Path] = []  # this session's finished episodes
        self.recovered = len(leftover)
        self._ds = None
        self._tmp: pathlib.Path | None = None
        self._frames = 0
        self._closed = False

    @property
    def episodes(self) -> int:
        """Episodes kept in this session so far."""
        return len(self._staged)

    @property
    def frames(self) -> int:
        """Frames of the episode being recorded."""
        return self._frames

    def _open_episode(self):
        # <order in the staging dir>_<session start>_<random>: sorts in recording order, unique across sessions
        self.paths.staging.mkdir(parents=True, exist_ok=True)
        seqs = [int(d.name.removeprefix(".tmp_").split("_")[0]) for d in self.paths.staging.iterdir()]
        name = f"{max(seqs, default=-1) + 1:06d}_{self._session}_{uuid.uuid4().hex[:8]}"
        self._tmp = self.paths.staging / f".tmp_{name}"
        self._ds = self._dataset_cls.create(
            self.paths.repo_id,
            fps=self._fps,
            features=self._features,
            root=self._tmp,
            robot_type=self._robot_type,
            use_videos=True,
            vcodec="h264",
        )

    def add_frame(self, frame: dict, task: str) -> None:
        missing = set(self._features) - set(frame)
        if missing:
            raise KeyError(f"frame is missing features {sorted(missing)}")
        if self._ds is None:
            self._open_episode()
        self._ds.add_frame(
            {
                **{
                    k: (np.asarray(v, np.float32) if self._features[k]["dtype"] == "float32" else v)
                    for k, v in frame.items()
                },
                "task": task,
            }
        )
        self._frames += 1

    def save_episode(self) -> bool:
        """Finish the current episode: finalized on disk and renamed into the staging dir (atomic). False if it
        has no frames."""
        if self._frames == 0:
            return False
        self._ds.save_episode()
        self._ds.finalize()
        _fsync_tree(self._tmp)
        dst = self._tmp.with_name(self.pending_name)
        os.rename(self._tmp, dst)
        _fsync_dir(self.paths.staging)
        self._staged.append(dst)
        self._ds, self._tmp, self._frames = None, None, 0
        logger.info("saved episode %d (%s)", len(self._staged), dst.name)
        return True

    @property
    def pending_name(self) -> str | None:
        """Staging name the episode being recorded gets when it is saved (None before its first frame)."""
        return None if self._tmp is None else self._tmp.name[len(".tmp_") :]

    def abort(self) -> None:
        """Drop the episode being recorded and release the dataset lock without merging (finished episodes stay
        staged for `--resume` / recover)."""
        self.discard_episode()
        self._lock.release()

    def discard_episode(self) -> None:
        """Drop the episode being recorded."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._ds, self._tmp, self._frames = None, None, 0

    def discard_last(self) -> bool:
        """Drop the last episode saved in this session (before it is merged). False if there is none."""
        if not self._staged:
            return False
        shutil.rmtree(self._staged.pop())
        return True

    def close(self) -> pathlib.Path | None:
        """Drop an unfinished episode, merge the staged ones into the dataset. Returns the dataset dir, or None
        if there is none. If merging fails the staged episodes stay on disk (see the recovery command)."""
        if self._closed:
            return self.final if self.final.exists() else None
        self._closed = True
        self.discard_episode()
        try:
            staged = staged_episodes(self.paths)  # this session's + recovered leftovers, in order
            out = merge(self.paths, staged, keep_existing=self._keep_existing)
        except BaseException:
            if self.paths.staging.exists():
                logger.error(
                    "merging failed; the episodes are safe in %s: `%s`",
                    self.paths.staging,
                    self.paths.recover_command(),
                )
            raise
        finally:
            self._lock.release()
        if out is not None:
            logger.info("dataset with %d new episodes at %s", len(staged), out)
        return out


@dataclasses.dataclass
class RecoverArgs:
    repo_id: str
    """Dataset name whose staging dir (.<repo_id>.staging) holds the episodes of an interrupted session."""
    root: pathlib.Path | None = None
    """Datasets home; default $HF_LEROBOT_HOME (datasets/ with make)."""
    overwrite: bool = False
    """Replace the existing dataset with the recovered episodes instead of appending them."""


def main(args: RecoverArgs) -> pathlib.Path | None:
    out = recover(args.repo_id, args.root, overwrite=args.overwrite)
    print(f"dataset: {out}" if out else "nothing to recover")
    return out


if __name__ == "__main__":
    import tyro

    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(RecoverArgs))
