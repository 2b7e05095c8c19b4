"""Pick a headless OpenGL backend for MuJoCo before anything imports it."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = "import mujoco; ctx = mujoco.GLContext(64, 64); ctx.make_current(); ctx.free()"


def _works(backend: str) -> bool:
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_headless_gl() -> str:
    """Sets MUJOCO_GL (and PYOPENGL_PLATFORM) to a backend that renders here, and returns it.

    Respects an explicit MUJOCO_GL. Otherwise tries egl, then osmesa, and raises with the packages to install.
    """
    if os.environ.get("MUJOCO_GL"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
        return os.environ["MUJOCO_GL"]
    for backend in ("egl", "osmesa"):
        if _works(backend):
            os.environ["MUJOCO_GL"] = backend
            os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
    raise RuntimeError(
        "No headless OpenGL backend works for MuJoCo. Install EGL (Debian: libegl1 libgl1-mesa-dri) or OSMesa "
        "(libosmesa6), e.g. `make setup-apt`, or set MUJOCO_GL=glfw when a display is available."
    )
