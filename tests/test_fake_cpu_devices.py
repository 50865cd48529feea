"""The XLA_FLAGS a child process gets for N fake CPU devices."""

import os
import subprocess
import sys

import pytest

from bigjax.fake_cpu_devices import xla_flags_with_devices

from conftest import FAST_TEST_COMPILES, cli_env


def test_the_device_count_replaces_an_earlier_one_and_keeps_every_other_flag():
    flags = "--xla_backend_optimization_level=0 --xla_force_host_platform_device_count=2"
    assert xla_flags_with_devices(flags, 8).split() == [
        "--xla_backend_optimization_level=0", "--xla_force_host_platform_device_count=8"]
    assert xla_flags_with_devices(None, 1) == "--xla_force_host_platform_device_count=1"
    with pytest.raises(ValueError, match="at least one"):
        xla_flags_with_devices("", 0)


def test_cli_children_keep_the_callers_flags_with_their_own_device_count(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false "
                                    "--xla_force_host_platform_device_count=2")
    assert cli_env(devices=4)["XLA_FLAGS"].split() == [
        "--xla_cpu_enable_fast_math=false", "--xla_force_host_platform_device_count=4"]


def optimized_llvm_lines(xla_flags: str, dump: str) -> int:
    """Lines of the optimized LLVM IR XLA:CPU emits for 108 random bits of shape 3x3x3x4
    (the case that took 1.4 s to compile with unrolling, 0.3 s as a flat array)."""
    env = {**os.environ, "XLA_FLAGS": f"{xla_flags} --xla_dump_to={dump}",
           "JAX_ENABLE_COMPILATION_CACHE": "0", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", "import jax; jax.jit(lambda k: jax.random.bits("
                    "k, (3, 3, 3, 4))).lower(jax.random.key(0)).compile()"],
                   env=env, check=True, timeout=120)
    return sum(len(open(os.path.join(dump, name)).readlines())
               for name in os.listdir(dump) if name.endswith("ir-with-opt.ll"))


def test_the_test_session_and_its_children_compile_at_llvm_o1_without_unrolling(tmp_path):
    # Set by conftest for CI time (see README, "Test compiles"); a child keeps it ...
    for flag in FAST_TEST_COMPILES:
        assert flag in os.environ["XLA_FLAGS"].split()
        assert flag in cli_env(devices=2)["XLA_FLAGS"].split()
    # ... and XLA takes each flag: the same program's optimized LLVM IR shrinks (measured:
    # 12,095 lines by default, 6,389 without unrolling, 1,008 at -O1, 807 with both),
    # which is the code LLVM no longer unrolls and optimizes.
    default = optimized_llvm_lines("", str(tmp_path / "default"))
    rolled = optimized_llvm_lines(FAST_TEST_COMPILES[1], str(tmp_path / "rolled"))
    both = optimized_llvm_lines(" ".join(FAST_TEST_COMPILES), str(tmp_path / "both"))
    assert 0 < both < rolled < 0.75 * default, (both, rolled, default)
    assert both < 0.2 * default, (both, default)
