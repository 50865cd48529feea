"""The XLA_FLAGS a child process gets for N fake CPU devices."""

import os

import pytest

from bigjax.fake_cpu_devices import xla_flags_with_devices

from conftest import cli_env


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


def test_the_test_session_and_its_children_compile_without_loop_unrolling():
    # Set by conftest for CI time (see README, "Test compiles"); a child keeps it.
    flag = "--xla_backend_extra_options=xla_cpu_disable_loop_unrolling"
    assert flag in os.environ["XLA_FLAGS"].split()
    assert flag in cli_env(devices=2)["XLA_FLAGS"].split()
