"""The policy-server process the wire fuzz test attacks (tests/serving/test_serving_fuzz.py): the golden tiny pi0.5
behind the Piper and the ALOHA input transforms (`tiny_checkpoint` step dirs), one websocket server each, in one
process. Prints "<piper port> <aloha port>", serves until stdin closes.

python serving_fuzz_server.py <piper step dir> <aloha step dir> <action horizon> <max message bytes> <cache dir>
"""

import dataclasses
import logging
import sys

CONFIGS = ("pi05_piper_pick_cube", "debug_pi05_aloha_sim")


def main(piper_dir: str, aloha_dir: str, horizon: int, max_message_bytes: int, cache_dir: str) -> None:
    import contextlib

    import jax

    # Both policies run the same tiny model: the second one's sampler comes out of the compilation cache.
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

    from openpi.models import pi0_config
    from openpi.models.pi0_config import TINY
    from openpi.policies import policy_config
    from openpi.serving.websocket_policy_server import serve_in_thread
    from openpi.training import config as _config

    with contextlib.ExitStack() as stack:
        ports = []
        for name, step_dir in zip(CONFIGS, (piper_dir, aloha_dir), strict=True):
            base = _config.get_config(name)
            cfg = dataclasses.replace(
                base,
                model=pi0_config.Pi0Config(pi05=True, action_horizon=horizon, **TINY),
                policy_metadata={**base.policy_metadata, "action_horizon": horizon},
            )
            # One denoising step and the identity RTC guidance (no backward pass to compile): the test is about
            # what reaches the model, not about the samples.
            policy = policy_config.create_trained_policy(
                cfg, step_dir, sample_kwargs={"num_steps": 1}, rtc_method="identity"
            )
            _, port = stack.enter_context(
                serve_in_thread(policy, metadata=policy.metadata, max_message_bytes=max_message_bytes)
            )
            ports.append(port)
        print(*ports, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
