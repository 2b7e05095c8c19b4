"""Resolve checkpoint / asset URLs to local paths through a download cache.

Local paths pass through. Remote URLs (`gs://`, `s3://`, `http(s)://`, anything fsspec understands) are cached under
`$OPENPI_DATA_HOME/<netloc>/<path>` (default `~/.cache/openpi`), e.g. `gs://openpi-assets/checkpoints/pi05_base` ->
`~/.cache/openpi/openpi-assets/checkpoints/pi05_base`. An official checkpoint already at the seed's place,
`$OPENPI_DATA_HOME/pi05_base`, is used from there (no download). Downloads go to `<dest>.partial` and are renamed into place
when complete, under a file lock, so concurrent processes and interrupted downloads never leave a half tree that
looks finished. `gs://` uses anonymous access (the openpi buckets are public).
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import urllib.parse
import urllib.request

import filelock

logger = logging.getLogger("openpi.download")

_OPENPI_DATA_HOME = "OPENPI_DATA_HOME"
DEFAULT_CACHE_DIR = "~/.cache/openpi"


def get_cache_dir() -> pathlib.Path:
    cache_dir = pathlib.Path(os.environ.get(_OPENPI_DATA_HOME, DEFAULT_CACHE_DIR)).expanduser().resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir


def _is_remote(url: str) -> bool:
    scheme = urllib.parse.urlparse(str(url)).scheme
    return len(scheme) > 1  # "c:" drive letters are local


def cache_path(url: str) -> pathlib.Path:
    parsed = urllib.parse.urlparse(url)
    return get_cache_dir() / parsed.netloc / parsed.path.strip("/")


SEED_CHECKPOINT_PREFIX = "gs://openpi-assets/checkpoints/"


def seed_layout_path(url: str) -> pathlib.Path | None:
    """Where the seed's README kept an official checkpoint: `$OPENPI_DATA_HOME/<name>/...` for
    `gs://openpi-assets/checkpoints/<name>/...` (e.g. OPENPI_DATA_HOME=./checkpoints/openpi ->
    ./checkpoints/openpi/pi05_base). Found as well as the cache's own `<netloc>/<path>`; None for other URLs."""
    if not url.startswith(SEED_CHECKPOINT_PREFIX):
        return None
    rest = url.removeprefix(SEED_CHECKPOINT_PREFIX).strip("/")
    return get_cache_dir() / rest if rest else None


def maybe_download(url: str, *, force_download: bool = False, **kwargs) -> pathlib.Path:
    """Return a local path for `url`, downloading (file or directory tree) into the cache if needed."""
    if not _is_remote(str(url)):
        path = pathlib.Path(url).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist (a local path; use gs://... or https://... for remote files)"
            )
        return path.resolve()
    local = cache_path(str(url))
    seed = seed_layout_path(str(url))
    if not force_download and not local.exists() and seed is not None and seed.exists():
        logger.info("Using %s for %s (the seed's $OPENPI_DATA_HOME/<checkpoint> layout)", seed, url)
        return seed
    local.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(local) + ".lock"):
        if local.exists() and not force_download:
            return local
        partial = local.with_name(local.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        logger.info("Downloading %s to %s", url, local)
        try:
            _download(str(url), partial, **kwargs)
        except Exception as e:
            raise ConnectionError(
                f"Could not download {url} ({type(e).__name__}: {e}). Check the network / URL, or download it yourself "
                f"and pass the local path (or place it at {local})."
            ) from e
        if local.exists():
            shutil.rmtree(local) if local.is_dir() else local.unlink()
        os.replace(partial, local)
    return local


def _download(url: str, dest: pathlib.Path, **kwargs) -> None:
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https"):
        with urllib.request.urlopen(url, timeout=kwargs.get("timeout", 60)) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f, length=1 << 20)
        return
    import fsspec

    storage = {"token": "anon"} if scheme == "gs" else {}
    storage.update(kwargs.get("storage_options", {}))
    fs, path = fsspec.core.url_to_fs(url, **storage)
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(dest), recursive=True)
    else:
        fs.get(path, str(dest))
