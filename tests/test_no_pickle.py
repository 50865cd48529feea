"""Safety: nothing bigjax reads back from disk is unpickled. A tokenized-ids cache file
replaced by a pickle payload is refused (and rebuilt), never executed."""

import os

import numpy as np

from bigjax.datasets import tokenized


class _Payload:
    """Unpickling this writes a marker file: proof that code from the file ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_cache_file_is_never_unpickled(tmp_path):
    marker, path = str(tmp_path / "ran"), str(tmp_path / "ids.npz")
    np.savez(path, input_ids=np.array([_Payload(marker)], dtype=object))
    assert tokenized._load_cached(path, 1) is None  # refused: it will be tokenized again
    assert not os.path.exists(marker)
