"""A policy server process for the closed-loop robot tests (the GPU box of a real setup): serves the golden tiny
pi0.5 from a `tiny_checkpoint` step dir with a robot config's transforms, prints its port, exits when stdin closes.

python robots_tiny_server.py <config_name> <step_dir> <action_horizon>
"""

import dataclasses
import logging
import os
import sys


def main(config_name: str, step_dir: str, horizon: int) -> None:
    # In a real setup the policy runs on another machine; at low priority here it does not steal the control loop's
    # CPU on the 2-core test machine.
    os.nice(10)
    from openpi.models import pi0_config
    from openpi.models.pi0_config import TINY
    from openpi.policies import policy_config
    from openpi.serving.websocket_policy_server import serve_in_thread
    from openpi.training import config as _config

    base = _config.get_config(config_name)
    cfg = dataclasses.replace(
        base,
        model=pi0_config.Pi0Config(pi05=True, action_horizon=horizon, **TINY),
        policy_metadata={**base.policy_metadata, "action_horizon": horizon},
    )
    # 4 denoising steps keep the tiny model's CPU round trip well inside a chunk on the 2-core machine.
    policy = policy_config.create_trained_policy(cfg, step_dir, sample_kwargs={"num_steps": 4})
    policy.warmup(cfg.model)
    with serve_in_thread(policy, metadata=policy.metadata) as (_, port):
        print(port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
