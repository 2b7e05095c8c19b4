"""The monorepo layout and Makefile contract the README documents."""

import subprocess

import tomllib

PACKAGES = {
    "openpi-core": "openpi",
    "openpi-client": "openpi_client",
    "robot-common": "robot_common",
    "robot-piper": "robot_piper",
    "robot-flexiv": "robot_flexiv",
    "aloha-sim": "aloha_sim",
}


def test_workspace_packages_have_own_pyproject(repo_root):
    root = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert root["tool"]["uv"]["workspace"]["members"] == ["packages/*"]
    for dist, module in PACKAGES.items():
        meta = tomllib.loads((repo_root / "packages" / dist / "pyproject.toml").read_text())
        assert meta["project"]["name"] == dist
        assert (repo_root / "packages" / dist / "src" / module / "__init__.py").is_file()


def test_client_stays_light(repo_root):
    deps = tomllib.loads((repo_root / "packages/openpi-client/pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in deps}
    assert names <= {"numpy", "msgpack", "websockets", "pillow"}, names


def test_make_help_lists_targets(repo_root):
    out = subprocess.run(["make", "-s", "help"], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    for target in ["setup", "test", "train", "train-pytorch", "norm-stats", "convert", "serve", "serve-piper", "demo"]:
        assert f" {target} " in out, f"make help does not list {target}"


def test_no_machine_paths_committed(repo_root):
    files = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True).stdout.split()
    for f in files:
        p = repo_root / f
        if p.suffix in {".toml", ".txt", ".lock", ".mk", ".sh"} or p.name == "Makefile":
            text = p.read_text(errors="ignore")
            assert "/opt/wheels" not in text and "/opt/pypi" not in text, f"{f} hard-codes a machine path"
