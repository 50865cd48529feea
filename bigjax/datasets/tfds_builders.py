"""tfds data sets by name: `tensorflow_datasets` with the builder families bigjax reads
registered, and one split's data source, prepared by tfds when it is not yet.

tfds registers its older builders (`cifar10`, `glue`, `c4`, `wiki40b`, the
`wmt*_translate` sets, ...) on the first lookup of a name, by importing their family
packages in one loop that stops at the first package failing to import. tfds 4.9.10
without `h5py` (which its `nearest_neighbors` family needs) stops there, before `text` and
`translate`, and then calls `glue` or `wmt14_translate` "not found". `import_tfds` imports
each family bigjax reads on its own.
"""

from __future__ import annotations

import functools
import importlib
import logging
from types import ModuleType

from bigjax.datasets import local_files

log = logging.getLogger("bigjax")

# tfds's packages holding the older builders of the names bigjax reads: mnist and cifar10;
# glue, c4 and wiki40b; the wmt*_translate sets.
BUILDER_FAMILIES = ("image_classification", "text", "translate")


@functools.cache
def import_tfds() -> ModuleType:
    """The `tensorflow_datasets` module, with `BUILDER_FAMILIES` registered (each family
    that fails to import is logged, and its names stay unknown to tfds)."""
    import tensorflow_datasets as tfds

    for family in BUILDER_FAMILIES:
        try:
            importlib.import_module(f"tensorflow_datasets.{family}")
        except Exception as err:  # as tfds's own loop: any failure leaves the others
            log.warning("tfds's %s builders could not be imported (%s): their data sets "
                        "are unknown to tfds.", family, err)
    return tfds


def prepared_split(name: str, split: str, expected: str):
    """`(builder, source)` for split `split` of tfds data set `name`: tfds downloads and
    prepares it (ArrayRecord files) when it is not prepared yet, failing within seconds
    when there is no network (`expected`: the offline files that would have served it
    instead, for the message). `source[i]` is example i; its length is checked > 0."""
    builder = import_tfds().builder(name, file_format="array_record")
    if not builder.is_prepared():
        local_files.require_network(name, expected)
        builder.download_and_prepare()
    source = builder.as_data_source(split=split)
    local_files.require_examples(len(source), name, split, "tfds")
    return builder, source
