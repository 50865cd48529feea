"""The config schema: config files are validated like overrides, state only what differs,
and the docs (README, --print_config) come from the schema."""

import json
import os
import textwrap

import pytest

from bigjax import config_cli, config_docs, config_keys, models, train

from conftest import REPO, run_cli

# A config written from scratch: what differs from the defaults, nothing else.
SCRATCH = """
import ml_collections

def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.data = dict(name="digits")
    config.pp = dict(kind="image")
    config.model = dict(name="mlp", num_classes=10, hidden=(256, 256))
    config.task = "classification"
    config.optim = dict(name="sgd", learning_rate=0.05, momentum=0.9)
    config.batch_size = 64
    config.total_steps = 30
    {extra}
    return config
"""


def _write_config(tmp_path, extra: str = "", body: str = SCRATCH) -> str:
    path = tmp_path / "my_config.py"
    path.write_text(textwrap.dedent(body).replace("{extra}", extra))
    return str(path)


def test_a_config_from_scratch_needs_only_what_differs_and_trains(tmp_path):
    config = config_cli.load_config_file(_write_config(tmp_path))
    assert config.optim.momentum == 0.9 and config.optim.nesterov is False  # a default
    assert config.checkpoint.keep == config_keys.default("checkpoint.keep")
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert result["step"] == 30 and result["accuracy"] > 0.5


@pytest.mark.parametrize("extra,message", [
    ('config.optim.momentun = 0.9',
     "Unknown config key config.optim.momentun. Did you mean 'momentum'?"),
    ('config.num_epochs = 3', "Unknown config key config.num_epochs."),
    ('config.eval_batch_size = 32.0', "config.eval_batch_size=32.0 must be int >= 1; got a float"),
    ('config.batch_size = 0', "config.batch_size=0 must be int >= 1"),
    ('config.optim.learning_rate = float("nan")', "config.optim.learning_rate=nan must be"),
    ('config.mesh = dict(tensor=0)', "config.mesh.tensor=0 must be int >= 1 (or -1)"),
    ('config.pp.kind = "images"', "config.pp.kind='images' is not one of 'image', 'text', "
                                  "'text_mlm', 'lm', 'translation'. Did you mean 'image'?"),
    ('config.model.name = "resnext"', "config.model.name='resnext' is not one of 'mlp', 'cnn'"),
    ('config.model.conv_features = (8,)', "Unknown config key config.model.conv_features."),
    ('del config.task', "config.task is required (one of 'classification', 'mlm', "
                        "'causal_lm', 'translation')"),
    ('del config.model.num_classes', "config.model.num_classes is required"),
    ('config.evals = dict(test=dict(type="metric"))',
     "config.evals.test.type='metric' is not one of 'metrics', 'predictions', 'samples', "
     "'translations'. Did you mean 'metrics'?"),
    ('config.evals = dict(test=dict(type="metrics", every=3))',
     "Unknown config key config.evals.test.every."),
])
def test_config_files_are_validated_like_overrides(tmp_path, extra, message):
    with pytest.raises(config_cli.ConfigError) as err:
        config_cli.load_config_file(_write_config(tmp_path, extra))
    assert message in str(err.value)


def test_an_exception_inside_get_config_names_its_line(tmp_path):
    path = _write_config(tmp_path, 'raise ValueError("width must be even")')
    with pytest.raises(config_cli.ConfigError) as err:
        config_cli.load_config_file(f"{path}:x")
    line = open(path).read().splitlines().index('    raise ValueError("width must be even")') + 1
    assert str(err.value) == (f'{path}:x: line {line} (raise ValueError("width must be even")):'
                              " ValueError: width must be even")
    with pytest.raises(config_cli.ConfigError, match="line 2: SyntaxError"):
        config_cli.load_config_file(_write_config(tmp_path, body="import x\ndef get_config(:\n"))


def test_every_model_field_is_documented_and_typed():
    for name, cls in models.MODELS.items():
        for key, node in models.model_keys(cls).items():
            assert node.doc != "(undocumented)", f"{name}.{key}: add it to `Attributes:`"
            assert node.kind != "any", f"{name}.{key}: give it a type hint the schema knows"


def test_a_config_saved_by_an_older_run_resolves_with_what_that_run_used():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mnist_mlp.py"))
    saved = json.loads(config_cli.to_json(config))
    for key in ("grad_accum_steps", "divergence_factor", "evals"):
        del saved[key]
    del saved["optim"]["decay_exclude"], saved["optim"]["nesterov"]
    old = config_keys.resolve(config_keys.fill_legacy(saved))
    assert old.optim.decay_exclude == "rank<2"  # the rule that run used, not the default
    assert old.grad_accum_steps == 1 and old.optim.nesterov is False and old.evals is None


def test_readme_key_reference_is_generated_from_the_schema():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    start = readme.index(config_docs.README_BEGIN)
    end = readme.index(config_docs.README_END) + len(config_docs.README_END)
    assert readme[start:end] == config_docs.markdown(), (
        "README's config keys are stale: run `python -m bigjax.config_docs --update README.md`")
    for dotted in ("optim.momentum", "checkpoint.keep", "mesh.tensor", "model.conv_features",
                   "pp.max_predictions", "evals.<entry>.every_steps"):
        assert f"`{dotted}`" in readme[start:end]


def test_print_config_shows_every_key_with_its_doc():
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:evals"))
    text = config_docs.annotated(config)
    for dotted in config_cli.valid_keys(config):
        if not dotted.startswith("evals."):
            value = config
            for part in dotted.split("."):
                value = value[part]
            assert f"{dotted.rsplit('.', 1)[-1]} = {value!r}" in text, dotted
    assert "  momentum = 0.9" in text and "# float in [0, 1) | None: sgd momentum" in text
    assert "    examples = 360" in text  # an evals entry shows what it sets


def test_cli_config_errors_are_one_line_and_leave_no_workdir(tmp_path):
    workdir = tmp_path / "run"
    path = _write_config(tmp_path, "config.optim.momentun = 0.9")
    proc = run_cli("main", f"--config={path}", f"--workdir={workdir}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: Unknown config key config.optim.momentun. Did you mean 'momentum'?")
    assert not workdir.exists()
    proc = run_cli("main", "--config=configs/digits_cnn.py", f"--workdir={workdir}",
                   "--config.optim.momentum=0.8", "--print_config")
    assert "  momentum = 0.8" in proc.stdout and not workdir.exists()
