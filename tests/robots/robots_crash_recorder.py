"""Subprocess for the crash test: records fake episodes of `--steps` frames into `--root`/`--repo-id` and, in
episode `--crash-episode` (0-based) at step 3, prints CRASH_POINT and blocks until the parent SIGKILLs it."""

import argparse
import pathlib
import sys
import time

import numpy as np

from robot_common.collect import record_episodes
from robot_common.controls import Controls
from robot_common.controls import Progress
from robot_common.recorder import EpisodeRecorder
from robot_common.recorder import image_feature
from robot_common.recorder import vector_feature

FEATURES = {
    "observation.state": vector_feature(2),
    "action": vector_feature(2),
    "observation.images.base": image_feature((16, 16, 3)),
}


class FakeRobot:
    def __init__(self):
        self.sent = []

    def command(self, target):
        self.sent.append(np.asarray(target))


class FakeCamera:
    def __init__(self, robot):
        self.robot = robot

    def read(self):
        return np.full((16, 16, 3), (len(self.robot.sent) * 7) % 256, np.uint8)


def make_leader(counter, crash_at=None):
    """leader(t) -> [global call number, t]; blocks at `crash_at` = (episode, step)."""

    def leader(t):
        if t == 0:
            counter["episode"] += 1
        if crash_at is not None and (counter["episode"] - 1, t) == crash_at:
            print("CRASH_POINT", flush=True)
            time.sleep(600)
        counter["calls"] += 1
        return np.array([counter["calls"] - 1, t], np.float64)

    return leader


def vectors(target):
    return {"observation.state": target + 0.5, "action": target}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--repo-id", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--crash-episode", type=int, default=2)
    a = ap.parse_args()
    robot = FakeRobot()
    recorder = EpisodeRecorder(a.repo_id, fps=30, features=FEATURES, robot_type="fake", root=pathlib.Path(a.root))
    record_episodes(
        robot,
        {"base": FakeCamera(robot)},
        make_leader({"episode": 0, "calls": 0}, crash_at=(a.crash_episode, 3)),
        recorder,
        task="crash test",
        num_episodes=a.crash_episode + 5,
        episode_steps=a.steps,
        fps=30,
        vectors=vectors,
        image_keys={"base": "observation.images.base"},
        realtime=False,
        controls=Controls("auto"),
        progress=Progress(sys.stderr, live=False),
    )


if __name__ == "__main__":
    main()
