"""torch.compile of the denoising step on a 1-layer pi0.5 (the CI-sized config): compiled actions equal eager ones,
the inductor cache lands under OPENPI_DATA_HOME, and a second process start reuses it (much shorter first call)."""

import os
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_compiled_step_matches_eager_and_second_start_reuses_the_cache(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import bench_torch_compile as bench
    finally:
        sys.path.pop(0)
    home = str(tmp_path / "openpi_home")
    first = bench._spawn("compiled", "ci", 2, "default", home, compile_prefix=False)
    cache = pathlib.Path(home) / "torch_compile_cache"
    assert first["cache_dir"] == str(cache) and any(cache.rglob("*")), first
    second = bench._spawn("compiled", "ci", 2, "default", home, compile_prefix=False)
    print(f"first start {first['first_call_s']:.1f} s, second start {second['first_call_s']:.1f} s")
    for r in (first, second):
        assert r["max_abs_diff_vs_eager_same_process"] < 1e-5, r
    assert second["first_call_s"] < 0.5 * first["first_call_s"], (first, second)
    assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") != str(cache)  # the test process itself is untouched
