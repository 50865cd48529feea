"""tfds names bigjax reads resolve to their builders, whatever tfds's own registration
loop managed to import (tfds 4.9.10 without h5py stops before `text` and `translate`)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

# In a fresh process where `import h5py` fails (as it does where h5py is not installed),
# so tfds's own loop stops at its `nearest_neighbors` builders whatever this machine has.
PROBE = """
import json, sys
sys.modules["h5py"] = None
sys.path.insert(0, {repo!r})
from bigjax.datasets import image_sets, text_corpora, tfds_builders
tfds = tfds_builders.import_tfds()
names = {{"mnist", "imdb_reviews", "glue", "ag_news_subset", "tiny_shakespeare",
          "wmt14_translate", "wmt19_translate", *image_sets.SETS,
          *(name.split("/")[0] for name in text_corpora.TFDS_TEXT)}}
print(json.dumps({{name: tfds.builder_cls(name).name for name in sorted(names)}}))
"""


def test_every_tfds_name_bigjax_reads_has_a_builder():
    pytest.importorskip("tensorflow_datasets")
    proc = subprocess.run([sys.executable, "-c", PROBE.format(repo=REPO)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"cifar10", "imagenet2012", "c4", "wiki40b", "glue", "wmt14_translate"} <= set(found)
    assert all(name == builder for name, builder in found.items()), found
