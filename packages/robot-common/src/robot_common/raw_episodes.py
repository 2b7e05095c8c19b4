"""Record episodes without lerobot (numpy only), convert them into a LeRobot dataset later.

The Flexiv client runs in `.venv-flexiv` (Python 3.12, no lerobot/torch there). `RawEpisodeRecorder` has the
interface of `robot_common.recorder.EpisodeRecorder` that `record_episodes` uses, and writes every finished episode
as one file, atomically (temp file + fsync + rename), so a crash loses at most the episode being recorded:

    <home>/.<repo_id>.raw/episode_000007.npz      one finished episode: a [T, ...] array per feature (images uint8
                                                 [T, H, W, 3], vectors float32 [T, D], `capture_time` float64),
                                                 `task` [T] str, `fps`, `features` (the spec, JSON), `robot_type`,
                                                 `timing` (robot_common.timing.EpisodeTiming, JSON)
    <home>/.<repo_id>.raw/rejected/episode_000009.npz
                                                 an episode taken off the dataset's rate (robot_common.timing):
                                                 not converted unless --keep-off-rate
    <home>/.<repo_id>.raw/.episode_000008.npz.tmp being written (a leftover one is a crash: ignored, reported)
    <home>/.<repo_id>.raw/converted/              episodes already in the LeRobot dataset (kept; delete when done)

Conversion runs where lerobot is installed (the main venv) and writes through `EpisodeRecorder`, so the dataset
is the same crash-safe LeRobot v3 dataset a live session writes:

    python -m robot_common.raw_episodes --repo-id <repo_id> [--root <home>] [--resume | --overwrite]
    make flexiv-convert REPO=<repo_id> [ARGS="--resume"]

Every raw episode handed to the dataset's staging dir is journalled (`convert_journal.jsonl`) before it is staged
and moved to `converted/` after, so an interrupted conversion never converts an episode twice nor loses one:
rerun with --resume (the staged episodes are merged first, the rest converted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import re
import shlex
import time
import zipfile

import numpy as np

from robot_common.recorder import MANIFEST
from robot_common.recorder import Paths
from robot_common.recorder import UnmergedEpisodesError
from robot_common.recorder import _fsync_dir
from robot_common.recorder import _Lock
from robot_common.recorder import lerobot_home
from robot_common.recorder import recover
from robot_common.timing import EpisodeTiming

logger = logging.getLogger("robot_common.raw_episodes")

_EPISODE = re.compile(r"^episode_(\d{6})\.npz$")
_TMP = re.compile(r"^\.episode_(\d{6})\.npz\.tmp$")
_META_KEYS = ("task", "fps", "features", "robot_type", "timing")
REJECTED_DIR = "rejected"
JOURNAL = "convert_journal.jsonl"


def raw_dir(repo_id: str, root: pathlib.Path | None = None) -> pathlib.Path:
    p = Paths(pathlib.Path(root) if root else lerobot_home(), repo_id)
    return p.final.parent / f".{p.final.name}.raw"


def convert_command(repo_id: str, root: pathlib.Path | None = None) -> str:
    home = shlex.quote(str((pathlib.Path(root) if root else lerobot_home()).absolute()))
    return f"python -m robot_common.raw_episodes --repo-id {shlex.quote(repo_id)} --root {home}"


def episode_files(d: pathlib.Path) -> list[pathlib.Path]:
    """Finished raw episodes in `d`, in recording order."""
    return sorted(f for f in d.iterdir() if _EPISODE.match(f.name)) if d.is_dir() else []


def partial_files(d: pathlib.Path) -> list[pathlib.Path]:
    """Episodes whose writing was interrupted (crash): never complete, never converted."""
    return sorted(f for f in d.iterdir() if _TMP.match(f.name)) if d.is_dir() else []


def _next_index(d: pathlib.Path) -> int:
    names = [f.name for f in d.iterdir()] if d.is_dir() else []
    for sub in ("converted", REJECTED_DIR):
        names += [f.name for f in (d / sub).iterdir()] if (d / sub).is_dir() else []
    idx = [int(m.group(1)) for n in names for m in [_EPISODE.match(n) or _TMP.match(n)] if m]
    return max(idx, default=-1) + 1


def _spec(features: dict) -> dict:
    """The features as JSON would give them back (tuples -> lists), for comparing sessions."""
    return json.loads(json.dumps(features))


def read_header(path: pathlib.Path) -> dict:
    """fps, features, robot_type, frame count and timing (None in files from before it was recorded) of a raw
    episode (reads only those members)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {
                "fps": int(z["fps"]),
                "features": json.loads(str(z["features"])),
                "robot_type": str(z["robot_type"]),
                "frames": int(z["task"].shape[0]),
                "timing": json.loads(str(z["timing"])) if "timing" in z.files else None,
            }
    except Exception as e:  # any damage: name the file
        raise ValueError(f"{path} is not a readable raw episode ({type(e).__name__}: {e})") from e


def read_episode(path: pathlib.Path) -> tuple[dict, dict[str, np.ndarray], list[str]]:
    """(header, {feature: [T, ...] array}, tasks[T]) of a raw episode, checked against its own spec."""
    head = read_header(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in head["features"]}
        tasks = [str(t) for t in z["task"]]
    n = len(tasks)
    for k, f in head["features"].items():
        if arrays[k].shape != (n, *f["shape"]):
            raise ValueError(f"{path}: {k} has shape {arrays[k].shape}, expected {(n, *f['shape'])}")
    return head, arrays, tasks


def _write_npz(f, frames: dict[str, list[np.ndarray]], arrays: dict[str, np.ndarray]) -> None:
    """What np.savez writes (an uncompressed zip of .npy members, read back with np.load), but each [T, ...]
    member is streamed frame by frame: no stacked copy of the episode in memory."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for k, seq in frames.items():
            with z.open(f"{k}.npy", "w", force_zip64=True) as m:
                header = {"descr": np.lib.format.dtype_to_descr(seq[0].dtype), "fortran_order": False}
                np.lib.format.write_array_header_1_0(m, {**header, "shape": (len(seq), *seq[0].shape)})
                for frame in seq:
                    m.write(np.ascontiguousarray(frame).tobytes())
        for k, v in arrays.items():
            with z.open(f"{k}.npy", "w", force_zip64=True) as m:
                np.lib.format.write_array(m, v, allow_pickle=False)


class RawEpisodeRecorder:
    """Numpy-only stand-in for `EpisodeRecorder`: one atomic `.npz` per finished episode (see module doc).

    `resume`: record after the raw episodes already there (not converted yet). `overwrite`: move those aside to
    `overwritten/<time>/` first (kept, never deleted). Without either, existing raw episodes are an error. Whether
    the converted episodes replace or extend the LeRobot dataset is decided at conversion (--overwrite/--resume)."""

    merges_on_close = False  # episodes are already final .npz files; conversion happens later

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
        clash = set(features) & set(_META_KEYS)
        if clash:
            raise ValueError(f"feature names {sorted(clash)} are reserved in raw episodes; rename them")
        self.repo_id, self.root = repo_id, root
        self.dir = self.final = raw_dir(repo_id, root)
        self._lock = _Lock(self.dir / ".lock")
        try:
            existing = episode_files(self.dir)
            for f in partial_files(self.dir):
                logger.warning("ignoring %s: an episode interrupted while it was being written (crash)", f)
            if existing and overwrite:
                aside = self.dir / "overwritten" / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                aside.mkdir(parents=True, exist_ok=True)
                for f in existing:
                    os.replace(f, aside / f.name)
                logger.warning("--overwrite: moved %d unconverted raw episodes to %s", len(existing), aside)
            elif existing and not resume:
                raise FileExistsError(
                    f"{len(existing)} raw episodes not converted yet are in {self.dir}: pass --resume to record more "
                    f"after them, --overwrite to move them aside, or convert them first with "
                    f"`{convert_command(repo_id, root)}`"
                )
            elif existing:
                head = read_header(existing[-1])
                if head["fps"] != fps or head["features"] != _spec(features):
                    raise ValueError(
                        f"{existing[-1]} was recorded with other settings (fps {head['fps']} vs {fps}, or other "
                        "features): use the same --fps / --cameras.height / --cameras.width, another --repo-id, "
                        "or convert the existing episodes first"
                    )
        except BaseException:
            self._lock.release()
            raise
        self._fps, self._features, self._robot_type = int(fps), features, robot_type
        self._saved: list[pathlib.Path] = []  # kept and rejected, in order
        self.rejected: list[pathlib.Path] = []
        self._buf: dict[str, list[np.ndarray]] = {k: [] for k in features}
        self._tasks: list[str] = []
        self.recovered = 0  # nothing is merged at close(): conversion is a separate step
        self._closed = False

    @property
    def features(self) -> dict:
        return self._features

    @property
    def episodes(self) -> int:
        """Episodes kept in this session so far (not counting the rejected ones)."""
        return len(self._saved) - len(self.rejected)

    def rejected_note(self) -> str:
        n = len(episode_files(self.dir / REJECTED_DIR))
        return (
            f"{n} episodes rejected for their timing (off the dataset's rate) are kept aside in "
            f"{self.dir / REJECTED_DIR} (not converted); convert them anyway with "
            f"`{convert_command(self.repo_id, self.root)} --keep-off-rate`, or delete them"
        )

    @property
    def frames(self) -> int:
        """Frames of the episode being recorded."""
        return len(self._tasks)

    def add_frame(self, frame: dict, task: str) -> None:
        missing = set(self._features) - set(frame)
        if missing:
            raise KeyError(f"frame is missing features {sorted(missing)}")
        for k, f in self._features.items():
            if f["dtype"] in ("video", "image"):
                v = np.asarray(frame[k])
                if v.dtype != np.uint8:
                    raise TypeError(f"{k}: images are recorded as uint8 [H, W, 3], got {v.dtype}")
                v = np.array(v, copy=True)  # a camera may reuse its buffer
            else:
                v = np.array(frame[k], dtype=f["dtype"], copy=True)
            if v.shape != tuple(f["shape"]):
                raise ValueError(f"{k}: shape {v.shape} does not match the feature's {tuple(f['shape'])}")
            self._buf[k].append(v)
        self._tasks.append(str(task))

    def save_episode(self, timing: EpisodeTiming | None = None) -> bool:
        """Write the current episode atomically as the next `episode_NNNNNN.npz` (after the control loop). With a
        `timing` that is off rate and not `kept_anyway` it goes to `rejected/` (not converted). False if it has no
        frames."""
        if not self._tasks:
            return False
        rejected = timing is not None and timing.off_rate and not timing.kept_anyway
        out_dir = self.dir / REJECTED_DIR if rejected else self.dir
        out_dir.mkdir(parents=True, exist_ok=True)
        idx = _next_index(self.dir)
        dst = out_dir / f"episode_{idx:06d}.npz"
        tmp = out_dir / f".{dst.name}.tmp"
        meta = {
            "task": np.array(self._tasks),
            "fps": np.array(self._fps),
            "features": np.array(json.dumps(self._features)),
            "robot_type": np.array(self._robot_type),
        }
        if timing is not None:
            meta["timing"] = np.array(json.dumps(timing.to_json()))
        t0 = time.monotonic()
        with open(tmp, "wb") as f:
            _write_npz(f, self._buf, meta)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
        _fsync_dir(out_dir)
        self._saved.append(dst)
        if rejected:
            self.rejected.append(dst)
        logger.info(
            "%s episode %d (%s, %d frames, %.0f MB in %.1f s)",
            "rejected" if rejected else "saved",
            len(self._saved),
            dst.name,
            len(self._tasks),
            dst.stat().st_size / 1e6,
            time.monotonic() - t0,
        )
        self.discard_episode()
        return True

    def discard_episode(self) -> None:
        """Drop the episode being recorded."""
        self._buf = {k: [] for k in self._features}
        self._tasks = []

    def discard_last(self) -> str | None:
        """Delete the last episode saved in this session, kept or rejected. Returns "kept" or "rejected" (what it
        was), None if there is none."""
        if not self._saved:
            return None
        f = self._saved.pop()
        kind = "rejected" if f in self.rejected else "kept"
        if kind == "rejected":
            self.rejected.remove(f)
        f.unlink()
        return kind

    def close(self) -> pathlib.Path | None:
        """Drop an unfinished episode; returns the raw dir (None if it holds no episode) and prints how to
        convert it."""
        if not self._closed:
            self._closed = True
            self.discard_episode()
            self._lock.release()
            if episode_files(self.dir):
                print(
                    f"{len(episode_files(self.dir))} raw episodes in {self.dir}; convert them into the LeRobot "
                    f"dataset where lerobot is installed: `{convert_command(self.repo_id, self.root)}` "
                    f"(or `make flexiv-convert REPO={self.repo_id}`)",
                    flush=True,
                )
        return self.dir if episode_files(self.dir) else None


def lerobot_available() -> bool:
    try:
        import lerobot.datasets.lerobot_dataset  # noqa: F401
    except ImportError:
        return False
    return True


def open_recorder(fmt: str, repo_id: str, **kw):
    """The recorder for `--format`: lerobot (EpisodeRecorder), raw (RawEpisodeRecorder), or auto (lerobot when
    it is importable, else raw)."""
    if fmt not in ("lerobot", "raw", "auto"):
        raise ValueError(f"--format must be lerobot, raw or auto, got {fmt!r}")
    if fmt == "auto":
        fmt = "lerobot" if lerobot_available() else "raw"
        if fmt == "raw":
            logger.warning(
                "lerobot is not installed in this Python: recording raw episodes to %s; convert them into the "
                "dataset with `%s` (or `make flexiv-convert REPO=%s`) in the main venv",
                raw_dir(repo_id, kw.get("root")),
                convert_command(repo_id, kw.get("root")),
                repo_id,
            )
    if fmt == "raw":
        kw = {k: v for k, v in kw.items() if k not in ("writer", "queue_frames")}  # no writer: frames stay in memory
        return RawEpisodeRecorder(repo_id, **kw)
    from robot_common.recorder import EpisodeRecorder

    try:
        return EpisodeRecorder(repo_id, **kw)
    except ImportError as e:
        raise ImportError(f"--format lerobot needs lerobot ({e}); record with --format raw and convert later") from e


# ---------------------------------------------------------------------------------------------------- conversion


def _journal_entries(d: pathlib.Path) -> list[dict]:
    path = d / JOURNAL
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a torn last line: its episode was not staged yet
            out.append(json.loads(line))
    return out


def _move_converted(src: pathlib.Path) -> None:
    d = src.parent.parent if src.parent.name == REJECTED_DIR else src.parent  # the raw dir
    (d / "converted").mkdir(exist_ok=True)
    os.replace(src, d / "converted" / src.name)
    _fsync_dir(src.parent)


def _reconcile(d: pathlib.Path, p: Paths) -> int:
    """After an interrupted conversion: raw episodes whose staged copy is finished (in the staging dir or already
    merged into the dataset) are converted; move them to converted/. Returns how many."""
    merged = set(json.loads((p.final / MANIFEST).read_text())) if (p.final / MANIFEST).exists() else set()
    n = 0
    for e in _journal_entries(d):
        src = d / e["raw"]
        if src.exists() and (e["staged"] in merged or (p.staging / e["staged"] / "meta" / "info.json").exists()):
            _move_converted(src)
            n += 1
    (d / JOURNAL).unlink(missing_ok=True)
    return n


def _journal(d: pathlib.Path, raw: str, staged: str) -> None:
    with open(d / JOURNAL, "a") as f:
        f.write(json.dumps({"raw": raw, "staged": staged}) + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclasses.dataclass
class ConvertArgs:
    repo_id: str
    """Dataset name: converts <root>/.<repo_id>.raw/episode_*.npz into <root>/<repo_id>."""
    root: pathlib.Path | None = None
    """Datasets home; default $HF_LEROBOT_HOME (datasets/ with make)."""
    raw_dir: pathlib.Path | None = None
    """Where the raw episodes are, if not <root>/.<repo_id>.raw (e.g. copied from the robot PC)."""
    overwrite: bool = False
    """Replace an existing dataset with the converted episodes (once the new one is complete)."""
    resume: bool = False
    """Append the converted episodes to an existing dataset (and merge an interrupted conversion's staged ones)."""
    keep_off_rate: bool = False
    """Also convert the episodes rejected for their timing (in .raw/rejected/)."""


def convert(args: ConvertArgs) -> pathlib.Path | None:
    """Write the raw episodes, in order, into the LeRobot dataset through `EpisodeRecorder`; each converted file
    is moved to converted/. Returns the dataset dir (None: nothing to convert)."""
    from robot_common.recorder import EpisodeRecorder

    home = pathlib.Path(args.root) if args.root else lerobot_home()
    d = pathlib.Path(args.raw_dir) if args.raw_dir else raw_dir(args.repo_id, home)
    p = Paths(home, args.repo_id)
    if not d.is_dir() and not p.staging.exists():
        print(f"no raw episodes to convert: {d} does not exist")
        return None
    lock = _Lock(d / ".lock")  # no recording session writes this raw dir meanwhile
    try:
        for f in partial_files(d):
            logger.warning("skipping %s: written only partly (the recording crashed); delete it", f)
            print(f"skipped the partly written {f} (interrupted recording)")
        if (n := _reconcile(d, p)) > 0:
            logger.info("%d episodes of an interrupted conversion were already staged", n)
        files = episode_files(d)
        if args.keep_off_rate:
            files = sorted(files + episode_files(d / REJECTED_DIR), key=lambda f: f.name)
        elif rejected := episode_files(d / REJECTED_DIR):
            print(
                f"not converting {len(rejected)} episodes rejected for their timing in {d / REJECTED_DIR} "
                "(--keep-off-rate converts them too)"
            )
        if not files:
            if p.staging.exists() and (args.resume or args.overwrite):  # an interrupted conversion's staged ones
                return recover(args.repo_id, home, overwrite=args.overwrite, keep_off_rate=args.keep_off_rate)
            if p.staging.exists():
                raise UnmergedEpisodesError(
                    f"episodes of an interrupted conversion or session are staged in {p.staging}: rerun with --resume"
                )
            print(f"no raw episodes to convert in {d}")
            return None
        heads = [read_header(f) for f in files]  # all checked before anything is written
        first = heads[0]
        for f, h in zip(files, heads, strict=True):
            if (h["fps"], h["features"], h["robot_type"]) != (first["fps"], first["features"], first["robot_type"]):
                raise ValueError(f"{f} was recorded with other fps/features than {files[0]}: convert it separately")
        features = {k: {**v, "shape": tuple(v["shape"])} for k, v in first["features"].items()}
        rec = EpisodeRecorder(
            args.repo_id,
            fps=first["fps"],
            features=features,
            robot_type=first["robot_type"],
            overwrite=args.overwrite,
            resume=args.resume,
            root=home,
        )
        t0 = time.monotonic()
        try:
            for f, h in zip(files, heads, strict=True):
                _, arrays, tasks = read_episode(f)
                if not tasks:
                    logger.warning("skipping %s: it has no frames", f)
                    continue
                for t, task in enumerate(tasks):
                    rec.add_frame({k: a[t] for k, a in arrays.items()}, task)
                _journal(d, str(f.relative_to(d)), rec.pending_name)  # before it can become a staged episode
                timing = EpisodeTiming.from_json(h["timing"]) if h["timing"] else None
                if timing is not None:
                    timing.kept_anyway = timing.off_rate  # converted: kept (rejected ones only with --keep-off-rate)
                rec.save_episode(timing=timing)
                _move_converted(f)
                logger.info("converted %s (%d frames)", f.name, len(tasks))
        except BaseException:
            rec.abort()
            logger.error(
                "conversion interrupted; the episodes converted so far are staged in %s: rerun with --resume",
                p.staging,
            )
            raise
        out = rec.close()
        (d / JOURNAL).unlink(missing_ok=True)
        print(
            f"converted {len(files)} episodes ({sum(h['frames'] for h in heads)} frames) into {out} in "
            f"{time.monotonic() - t0:.1f} s; the raw files are in {d / 'converted'} (delete them when done)"
        )
        return out
    finally:
        lock.release()


if __name__ == "__main__":
    import tyro

    logging.basicConfig(level=logging.INFO)
    convert(tyro.cli(ConvertArgs))
