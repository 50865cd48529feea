import glob
import os
import re

import pytest

from bigjax import config_cli

from conftest import REPO

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if not os.path.basename(p).startswith("_"))


def test_overrides_take_the_type_of_their_key():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    config = config_cli.apply_overrides(config, [
        ("optim.learning_rate", "3e-4"), ("batch_size", "128"), ("model.hidden", "(256, 32)"),
        ("checkpoint.async_save", "false"), ("data.data_dir", "/tmp/d"),
        ("pp.normalize", "standardize"), ("optim.warmup_steps", "5"), ("init_from", "123")])
    assert config.optim.learning_rate == 3e-4 and isinstance(config.optim.learning_rate, float)
    assert config.batch_size == 128 and config.model.hidden == (256, 32)
    assert config.checkpoint.async_save is False and config.data.data_dir == "/tmp/d"
    assert config.optim.warmup_steps == 5 and config.init_from == "123"  # a str key stays str
    config = config_cli.apply_overrides(config, [("total_epochs", "None"), ("total_steps", "7")])
    assert config.total_epochs is None and config.total_steps == 7


def test_unknown_key_suggests_the_close_one_and_lists_its_section():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    with pytest.raises(config_cli.ConfigError) as err:
        config_cli.apply_overrides(config, [("optim.momentun", "1")])
    message = str(err.value)
    assert "Unknown config key --config.optim.momentun" in message
    assert "Did you mean --config.optim.momentum?" in message
    assert "optim.learning_rate" in message and "batch_size" not in message  # its section


def test_bad_values_are_clear():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    cases = [("batch_size", "big", "expects an integer"),
             ("batch_size", "32.5", "expects an integer"),
             ("checkpoint.async_save", "maybe", "expects true/false"),
             ("batch_size", "0", "config.batch_size=0 must be int >= 1"),
             ("batch_size", "-8", "config.batch_size=-8 must be int >= 1"),
             ("batch_size", "None", "config.batch_size must be set"),
             ("mesh.tensor", "0", "config.mesh.tensor=0 must be int >= 1 (or -1)"),
             ("optim.learning_rate", "-0.1", "config.optim.learning_rate=-0.1 must be float >= 0"),
             ("optim.learning_rate", "nan", "expects a number"),
             ("optim.learning_rate", "1e999", "learning_rate=inf must be float >= 0"),
             ("checkpoint.keep", "0", "config.checkpoint.keep=0 must be int >= 1"),
             ("task", "clasification", "Did you mean 'classification'?"),
             ("pp.kind", "img", "is not one of 'image', 'text', 'text_mlm'"),
             ("optim.schedule", "cosine", "one of 'constant', 'warmup_cosine', 'warmup_linear', "
              "'warmup_rsqrt'"),
             ("model.dtype", "fp16", "one of 'float32', 'bfloat16', 'float16'")]
    for key, text, message in cases:
        with pytest.raises(config_cli.ConfigError, match=re.escape(message)):
            config_cli.apply_overrides(config, [(key, text)])
    config = config_cli.apply_overrides(config, [("mesh.tensor", "-1")])  # -1 is allowed
    assert config.mesh.tensor == -1


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
