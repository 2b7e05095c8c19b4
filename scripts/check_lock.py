"""Compare a venv with its lock: `python scripts/check_lock.py requirements/lock.txt` (run with the venv's python).

Prints the versions of the key packages and exits 1, naming each difference, unless every package pinned in the lock
is installed at exactly its version (a local build tag such as `+cpu` / `+cu130` is the same version: a wheel store
may serve a different build of it).
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import sys

KEY = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "torch",
    "torchvision",
    "torchcodec",
    "lerobot",
    "websockets",
    "numpy",
    "mujoco",
)


def read_pins(lock: pathlib.Path) -> dict[str, str]:
    """{normalized name: version} of every `name==version` line."""
    pins = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)", line)
        if m:
            pins[normalize(m.group(1))] = m.group(2)
    return pins


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def differences(pins: dict[str, str]) -> list[str]:
    out = []
    for name, want in sorted(pins.items()):
        have = installed_version(name)
        if have is None:
            out.append(f"{name}: not installed (lock: {want})")
        elif have.split("+")[0] != want.split("+")[0]:
            out.append(f"{name}: {have} installed, lock says {want}")
    return out


def main(argv: list[str]) -> int:
    lock = pathlib.Path(argv[0] if argv else "requirements/lock.txt")
    pins = read_pins(lock)
    if not pins:
        print(f"[lock] {lock} pins no package", file=sys.stderr)
        return 1
    key = [f"{k} {installed_version(k)}" for k in KEY if k in pins]
    print(f"[lock] {' | '.join(key)}")
    bad = differences(pins)
    if bad:
        print(f"[lock] {len(bad)} of {len(pins)} packages differ from {lock}:", file=sys.stderr)
        for line in bad:
            print(f"[lock]   {line}", file=sys.stderr)
        print(
            "[lock] rerun `make setup` (installs exactly the lock) or regenerate it with `make lock`", file=sys.stderr
        )
        return 1
    print(f"[lock] all {len(pins)} packages pinned in {lock} are installed at their locked versions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
