"""The XLA_FLAGS a child process gets for N fake CPU devices."""

import os
import subprocess
import sys

import pytest

from bigjax.fake_cpu_devices import xla_flags_with_devices

from conftest import NO_LOOP_UNROLLING, cli_env


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


def test_the_test_session_and_its_children_compile_without_loop_unrolling(tmp_path):
    # Set by conftest for CI time (see README, "Test compiles"); a child keeps it ...
    assert NO_LOOP_UNROLLING in os.environ["XLA_FLAGS"].split()
    assert NO_LOOP_UNROLLING in cli_env(devices=2)["XLA_FLAGS"].split()
    # ... and XLA takes it: the same program's optimized LLVM IR shrinks (measured:
    # 12,095 -> 6,389 lines), which is the code LLVM no longer unrolls and optimizes.
    unrolled = optimized_llvm_lines("", str(tmp_path / "default"))
    rolled = optimized_llvm_lines(NO_LOOP_UNROLLING, str(tmp_path / "rolled"))
    assert 0 < rolled < 0.75 * unrolled, (rolled, unrolled)
