"""tfds names bigjax reads resolve to their builders, whatever tfds's own registration
loop managed to import (tfds 4.9.10 without h5py stops before `text` and `translate`)."""

import pytest

from bigjax.datasets import image_sets, text_corpora, tfds_builders


def test_every_tfds_name_bigjax_reads_has_a_builder():
    pytest.importorskip("tensorflow_datasets")
    tfds = tfds_builders.import_tfds()
    names = {"mnist", "imdb_reviews", "glue", "ag_news_subset", "tiny_shakespeare",
             "wmt14_translate", "wmt19_translate", *image_sets.SETS,
             *(name.split("/")[0] for name in text_corpora.TFDS_TEXT)}
    assert {"cifar10", "imagenet2012", "c4", "wiki40b"} <= names
    for name in sorted(names):
        assert tfds.builder_cls(name).name == name
