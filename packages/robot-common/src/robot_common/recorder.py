"""Record episodes into a LeRobot v3 dataset so that a crash never loses a finished episode.

Layout under `<home>` ($HF_LEROBOT_HOME):

    <repo_id>/                      the dataset (LeRobot v3), replaced only by a complete new version
    .<repo_id>.staging/<episode>/   every finished episode of the running session, each a small *finalized*
                                    LeRobot dataset (written as .tmp_<episode>, then renamed: atomic)
    .<repo_id>.staging/<episode>.rejected/
                                    a finished episode taken off the dataset's rate (robot_common.timing): kept
                                    aside, never merged unless asked (--keep-off-rate)
    .<repo_id>.merging/             the merged dataset being written at the end of a session
    .<repo_id>.replaced/            the previous version, only while the new one is being moved into place
    .<repo_id>.lock                 held (flock) while a session writes the dataset

At the end of a session (normal end, `q`, Ctrl-C) the staged episodes are merged with lerobot's own
`aggregate_datasets` (appended after the existing episodes with `resume`) into `.merging`, which then replaces
`<repo_id>`; the staging dir is deleted last. The merged dataset lists the staged episodes it contains in
`meta/robot_common_episodes.json`, so a crash at any point is recovered without loss or duplicates:

    python -m robot_common.recorder --repo-id <repo_id> [--root <home>]     # merge a leftover staging dir
    (or record more with --resume, which merges it first; --keep-off-rate also merges the rejected episodes)

Each episode's timing (achieved rate, jitter, overruns, writer backpressure: robot_common.timing) is kept in
`meta/robot_common_timing.json` (one entry per episode index), and every frame has a `capture_time` column.

No encoding or disk work in the control loop: `add_frame` puts the frame into the recorder's own bounded queue
(`queue_frames` frames, robot_common.frame_writer) and a writer thread hands it to LeRobot's public
`LeRobotDataset.add_frame` (`writer="streaming"`: LeRobot's streaming video encoder, one encoder thread per camera;
`"threads"`: LeRobot's image writer threads write PNGs and the video is encoded after the episode; `"sync"`: no
queue, PNGs written inside the loop, for comparison). When the writer falls behind and the queue is full,
`add_frame` waits for room (never drops a frame) and the wait is counted as backpressure in the episode's timing.
LeRobot is used through its public API only. Its streaming encoder drops a frame when its own queue stays full for
0.1 s (a stalled encoder): `save_episode` counts the frames of every video on disk and refuses an episode whose
videos are shorter than its data.
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

from robot_common.frame_writer import FrameWriter
from robot_common.frame_writer import check_complete
from robot_common.timing import EpisodeTiming

logger = logging.getLogger("robot_common.recorder")

MANIFEST = "meta/robot_common_episodes.json"
"""Names of the staged episodes merged into a dataset (makes recovery idempotent)."""
TIMING = "meta/robot_common_timing.json"
"""Per-episode timing (robot_common.timing.EpisodeTiming + episode_index, staged name)."""
REJECTED = ".rejected"
"""Suffix of a staged episode rejected for its timing (not merged unless asked)."""
WRITERS = ("streaming", "threads", "sync")
ENCODER_QUEUE = 30
"""Frames per camera in LeRobot's own queue in front of its streaming encoder (`encoder_queue_maxsize`, LeRobot's
default): absorbs short encoder stalls, after which the recorder's queue holds the backlog."""
WRITER_TIMEOUT_S = 60.0
"""A full queue from which the writer takes no frame for this long is an error."""


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


def staged_episodes(p: Paths, *, include_rejected: bool = False) -> list[pathlib.Path]:
    """Finished staged episodes not yet in the dataset, in recording order. Drops unfinished ones (`.tmp_*`, a
    crash mid-episode) and ones already merged (a crash after the merge, before the staging dir was cleaned up).
    Episodes rejected for their timing only with `include_rejected`."""
    if not p.staging.exists():
        return []
    merged = set(_manifest(p.final)) if p.final.exists() else set()
    out = []
    for d in sorted(p.staging.iterdir()):
        if d.name.startswith(".tmp_"):
            logger.warning("dropping the unfinished episode %s (interrupted while recording)", d.name[5:])
            shutil.rmtree(d, ignore_errors=True)  # whatever is left (never merged: .tmp_) goes next time
        elif d.name.endswith(REJECTED) and not include_rejected:
            continue
        elif d.name not in merged and (d / "meta" / "info.json").exists():
            out.append(d)
    return out


def rejected_episodes(p: Paths) -> list[pathlib.Path]:
    """Staged episodes rejected for their timing (kept aside, not merged)."""
    if not p.staging.exists():
        return []
    merged = set(_manifest(p.final)) if p.final.exists() else set()
    return [d for d in sorted(p.staging.iterdir()) if d.name.endswith(REJECTED) and d.name not in merged]


def _timing_entries(dataset: pathlib.Path) -> list[dict]:
    path = dataset / TIMING
    return json.loads(path.read_text()) if path.exists() else []


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
    atomically: the merged dataset is complete on disk before the previous version is removed. Staged episodes
    not in `staged` (rejected for their timing) stay in the staging dir."""
    from lerobot.datasets.aggregate import aggregate_datasets

    keep = keep_existing and p.final.exists()
    if not staged:
        _clean_staging(p, [])
        return p.final if p.final.exists() else None
    sources = ([p.final] if keep else []) + staged
    shutil.rmtree(p.merging, ignore_errors=True)
    t0 = time.monotonic()
    aggregate_datasets([p.repo_id] * len(sources), p.repo_id, roots=sources, aggr_root=p.merging)
    names = (_manifest(p.final) if keep else []) + [d.name for d in staged]
    (p.merging / MANIFEST).write_text(json.dumps(names))
    timing = _timing_entries(p.final) if keep else []
    first = json.loads((p.final / "meta" / "info.json").read_text())["total_episodes"] if keep else 0
    for i, d in enumerate(staged):
        timing += [{**e, "episode_index": first + i, "staged": d.name} for e in _timing_entries(d)]
    (p.merging / TIMING).write_text(json.dumps(timing, indent=1))
    _fsync_tree(p.merging)
    if p.final.exists():
        os.rename(p.final, p.replaced)
    os.rename(p.merging, p.final)
    shutil.rmtree(p.replaced, ignore_errors=True)
    _clean_staging(p, staged)
    logger.info("merged %d episodes into %s in %.1f s", len(staged), p.final, time.monotonic() - t0)
    return p.final


def _clean_staging(p: Paths, merged: list[pathlib.Path]) -> None:
    """Remove the merged episodes from the staging dir, and the dir itself unless rejected episodes are left."""
    for d in merged:
        shutil.rmtree(d, ignore_errors=True)
    if p.staging.exists() and not any(p.staging.iterdir()):
        p.staging.rmdir()


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


def recover(
    repo_id: str, root: pathlib.Path | None = None, *, overwrite: bool = False, keep_off_rate: bool = False
) -> pathlib.Path | None:
    """Merge the episodes a crashed session left in the staging dir into the dataset (appended, or replacing it
    with `overwrite`); `keep_off_rate`: also the episodes rejected for their timing. Returns the dataset dir
    (None if there is none)."""
    p = Paths(pathlib.Path(root) if root else lerobot_home(), repo_id)
    lock = _Lock(p.lock)
    try:
        _repair_interrupted_swap(p)
        staged = staged_episodes(p, include_rejected=keep_off_rate)
        print(f"{len(staged)} unmerged episodes in {p.staging}")
        out = merge(p, staged, keep_existing=not overwrite)
        if left := rejected_episodes(p):
            print(rejected_note(p, len(left)))
        return out
    finally:
        lock.release()


def rejected_note(p: Paths, n: int) -> str:
    return (
        f"{n} episodes rejected for their timing (off the dataset's rate) are kept aside in {p.staging} "
        f"(*{REJECTED}); merge them anyway with `{p.recover_command()} --keep-off-rate`, or delete them"
    )


class EpisodeRecorder:
    """Writes each finished episode as its own finalized dataset (crash-safe) and merges them at `close()`.

    `resume`: keep the existing dataset and append to it, and merge the episodes a crashed session left behind.
    `overwrite`: replace the existing dataset (only once the new one is complete).
    `writer`: how images leave the control loop (module doc): "streaming" (default), "threads" or "sync".
    `queue_frames`: bound of the recorder's frame queue; a full queue makes `add_frame` wait."""

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
        writer: str = "streaming",
        queue_frames: int = 150,
        image_writer_threads: int = 4,
    ):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset  # slow import (~10 s): not in the first step
        from lerobot.datasets.utils import validate_frame

        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {WRITERS}, got {writer!r}")
        if queue_frames < 1:
            raise ValueError(f"queue_frames must be >= 1, got {queue_frames}")
        self._dataset_cls, self._validate_frame = LeRobotDataset, validate_frame
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
                features = _compatible_features(p.final, features)
                _check_features(p.final, fps, features)
            for d in leftover:
                _check_features(d, fps, features)
            if left := rejected_episodes(p):
                logger.warning(rejected_note(p, len(left)))
        except BaseException:
            self._lock.release()
            raise
        self._fps, self._features, self._robot_type = fps, features, robot_type
        self.writer, self.queue_frames, self._writer_threads = writer, int(queue_frames), image_writer_threads
        self._video_keys = [k for k, f in features.items() if f["dtype"] in ("video", "image")]
        self._keep_existing = not overwrite
        self._session = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._staged: list[pathlib.Path] = []  # this session's finished (kept) episodes
        self._saved: list[pathlib.Path] = []  # this session's saved episodes, kept and rejected, in order
        self.rejected: list[pathlib.Path] = []  # this session's episodes rejected for their timing
        self.recovered = len(leftover)
        self._ds = None
        self._writer: FrameWriter | None = None
        self._tmp: pathlib.Path | None = None
        self._frames = 0
        self._writer_stats = _WriterStats()
        self._closed = False

    @property
    def features(self) -> dict:
        """The dataset's features (a frame must have each of them)."""
        return self._features

    @property
    def episodes(self) -> int:
        """Episodes kept in this session so far (not counting the rejected ones)."""
        return len(self._staged)

    @property
    def frames(self) -> int:
        """Frames of the episode being recorded."""
        return self._frames

    def rejected_note(self) -> str:
        return rejected_note(self.paths, len(rejected_episodes(self.paths)))

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
            image_writer_threads=self._writer_threads if self.writer == "threads" else 0,
            streaming_encoding=self.writer == "streaming",
            encoder_queue_maxsize=ENCODER_QUEUE,
        )
        if self.writer != "sync":
            self._writer = FrameWriter(self._ds, self.queue_frames, wait_images=self.writer == "threads")
        self._writer_stats = _WriterStats()

    def start_episode(self) -> None:
        """Create the next episode's dataset now (disk work), so that the control loop's first `add_frame` does
        not. Optional: `add_frame` does it when needed."""
        if self._ds is None:
            self._open_episode()

    @property
    def backlog(self) -> int:
        """Frames waiting in the recorder's queue for the writer."""
        return self._writer.backlog if self._writer is not None else 0

    def writer_stats(self) -> dict:
        """Backpressure of the episode being recorded (EpisodeTiming's writer_* fields)."""
        st = self._writer_stats
        return {
            "writer_blocked_steps": st.blocked_steps,
            "writer_blocked_ms": 1e3 * st.blocked_s,
            "writer_max_backlog": st.max_backlog,
        }

    def add_frame(self, frame: dict, task: str) -> None:
        """Queue one frame (copied) for the writer thread (no encoding here); checked here against the features,
        so that a bad frame fails in the control loop."""
        missing = set(self._features) - set(frame)
        if missing:
            raise KeyError(f"frame is missing features {sorted(missing)}")
        if self._ds is None:
            self._open_episode()
        row = {**{k: _value(frame[k], f) for k, f in self._features.items()}, "task": task}
        self._validate_frame(row, self._features)
        if self._writer is None:  # writer="sync"
            self._ds.add_frame(row)
        else:
            self._raise_writer_error()
            st = self._writer_stats
            st.max_backlog = max(st.max_backlog, self._writer.backlog)
            waited = self._writer.put(row, timeout=WRITER_TIMEOUT_S)
            if waited:
                st.blocked_steps += 1
                st.blocked_s += waited
        self._frames += 1

    def _raise_writer_error(self) -> None:
        if self._writer is not None and self._writer.error is not None:
            err = self._writer.error
            raise RuntimeError(f"the episode writer failed: {err!r}; the episode is not saved") from err

    def save_episode(self, timing: EpisodeTiming | None = None) -> bool:
        """Finish the current episode after the loop (the writer's backlog is written, the video encoded):
        finalized on disk and renamed into the staging dir (atomic). With a `timing` that is off rate and not
        `kept_anyway`, it is staged as rejected (`<name>.rejected`, not merged). False if it has no frames.
        Raises (and drops the episode) if a frame was lost on the way: the dataset must hold every frame."""
        if self._frames == 0:
            return False
        t0 = time.monotonic()
        ds = self._ds
        try:
            if self._writer is not None:
                self._writer.finish()
                self._raise_writer_error()
            ds.save_episode()
            ds.stop_image_writer()
            ds.finalize()
            check_complete(self._tmp, ds.num_frames, self._frames, self._video_keys)
        except BaseException as err:
            try:
                self.discard_episode()
            except Exception as discard_err:  # the first error is the one raised; this one is attached to it
                err.add_note(f"discarding the unsaved episode then failed too: {discard_err!r}")
                logger.exception("discarding the unsaved episode failed")
            raise
        if timing is not None:
            (self._tmp / TIMING).write_text(json.dumps([timing.to_json()], indent=1))
        _fsync_tree(self._tmp)
        rejected = timing is not None and timing.off_rate and not timing.kept_anyway
        dst = self._tmp.with_name(self.pending_name + (REJECTED if rejected else ""))
        os.rename(self._tmp, dst)
        _fsync_dir(self.paths.staging)
        (self.rejected if rejected else self._staged).append(dst)
        self._saved.append(dst)
        self._ds, self._writer, self._tmp, self._frames = None, None, None, 0
        logger.info(
            "%s episode %s (%s) in %.1f s after the loop",
            "rejected" if rejected else "saved",
            len(self._saved),
            dst.name,
            time.monotonic() - t0,
        )
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
        """Drop the episode being recorded (its writer threads are stopped first)."""
        writer, ds, tmp = self._writer, self._ds, self._tmp
        self._ds, self._writer, self._tmp, self._frames = None, None, None, 0
        try:
            if writer is not None:
                writer.cancel()
            if ds is not None:
                ds.finalize()  # stops LeRobot's encoder threads (its episode is cancelled) and closes its files
                ds.stop_image_writer()
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def discard_last(self) -> str | None:
        """Drop the last episode saved in this session (before it is merged), kept or rejected. Returns "kept" or
        "rejected" (what it was), None if there is none."""
        if not self._saved:
            return None
        d = self._saved.pop()
        kind = "rejected" if d in self.rejected else "kept"
        (self.rejected if kind == "rejected" else self._staged).remove(d)
        shutil.rmtree(d)
        return kind

    def close(self) -> pathlib.Path | None:
        """Drop an unfinished episode, merge the staged ones into the dataset (not the rejected ones). Returns the
        dataset dir, or None if there is none. If merging fails the staged episodes stay on disk (see the recovery
        command)."""
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


def _value(v, feature: dict):
    """A copy (the frame waits in the queue while the caller may reuse its buffers), vectors in the feature's dtype."""
    if feature["dtype"] in ("float32", "float64"):
        return np.array(v, feature["dtype"], copy=True)
    return np.array(v, copy=True) if isinstance(v, np.ndarray) else v


@dataclasses.dataclass
class _WriterStats:
    blocked_steps: int = 0
    blocked_s: float = 0.0
    max_backlog: int = 0


def _compatible_features(dataset: pathlib.Path, features: dict) -> dict:
    """Appending to a dataset recorded before the `capture_time` column existed: record without it (the timing
    is still kept per episode in meta/robot_common_timing.json)."""
    from robot_common.timing import CAPTURE_TIME

    theirs = json.loads((dataset / "meta" / "info.json").read_text())["features"]
    if CAPTURE_TIME in features and CAPTURE_TIME not in theirs:
        logger.warning("%s has no %s column (recorded before it existed): appending without it", dataset, CAPTURE_TIME)
        return {k: v for k, v in features.items() if k != CAPTURE_TIME}
    return features


@dataclasses.dataclass
class RecoverArgs:
    repo_id: str
    """Dataset name whose staging dir (.<repo_id>.staging) holds the episodes of an interrupted session."""
    root: pathlib.Path | None = None
    """Datasets home; default $HF_LEROBOT_HOME (datasets/ with make)."""
    overwrite: bool = False
    """Replace the existing dataset with the recovered episodes instead of appending them."""
    keep_off_rate: bool = False
    """Also merge the episodes rejected for their timing (staged as <name>.rejected)."""


def main(args: RecoverArgs) -> pathlib.Path | None:
    out = recover(args.repo_id, args.root, overwrite=args.overwrite, keep_off_rate=args.keep_off_rate)
    print(f"dataset: {out}" if out else "nothing to recover")
    return out


if __name__ == "__main__":
    import tyro

    logging.basicConfig(level=logging.INFO)
    main(tyro.cli(RecoverArgs))
