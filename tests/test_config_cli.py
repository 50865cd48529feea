import glob
import os

import pytest

from bigjax import config_cli

from conftest import REPO

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if not os.path.basename(p).startswith("_"))


def test_overrides_take_the_type_of_the_value_they_replace():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    config_cli.apply_overrides(config, [
        ("optim.learning_rate", "3e-4"), ("batch_size", "128"), ("model.hidden", "(256, 32)"),
        ("checkpoint.async_save", "false"), ("data.data_dir", "/tmp/d"), ("pp.normalize", "x")])
    assert config.optim.learning_rate == 3e-4 and isinstance(config.optim.learning_rate, float)
    assert config.batch_size == 128 and config.model.hidden == (256, 32)
    assert config.checkpoint.async_save is False and config.data.data_dir == "/tmp/d"
    config_cli.apply_overrides(config, [("total_epochs", "None"), ("total_steps", "7")])
    assert config.total_epochs is None and config.total_steps == 7


def test_unknown_key_lists_valid_keys():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    with pytest.raises(config_cli.ConfigError) as err:
        config_cli.apply_overrides(config, [("optim.lr", "1")])
    assert "Unknown config key 'optim.lr'" in str(err.value)
    assert "optim.learning_rate" in str(err.value) and "batch_size" in str(err.value)


def test_bad_values_are_clear():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    with pytest.raises(config_cli.ConfigError, match="expects a number"):
        config_cli.apply_overrides(config, [("batch_size", "big")])
    with pytest.raises(config_cli.ConfigError, match="expects true/false"):
        config_cli.apply_overrides(config, [("checkpoint.async_save", "maybe")])


def test_split_override_args_accepts_both_spellings():
    rest, overrides = config_cli.split_override_args(
        ["--workdir=x", "--config.a=1", "--config.b", "2", "--config=c.py"])
    assert rest == ["--workdir=x", "--config=c.py"]
    assert overrides == [("a", "1"), ("b", "2")]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
@pytest.mark.parametrize("arg", [None, "runlocal"])
def test_every_config_loads_with_and_without_runlocal(path, arg):
    config = config_cli.load_config_file(f"{path}:{arg}" if arg else path)
    assert config.model.name and config.task
    if arg == "runlocal":
        assert config.total_steps is not None and config.total_steps <= 50


def test_missing_config_file_is_clear():
    with pytest.raises(config_cli.ConfigError, match="does not exist"):
        config_cli.load_config_file("configs/nope.py")


def test_unknown_variant_is_clear():
    with pytest.raises(config_cli.ConfigError, match="Unknown config variant.*'tunde'.*tuned"):
        config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py:tunde"))
