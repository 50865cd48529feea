"""A local Cloud Storage server for tests of `gs://` workdirs, with no network.

`gcp-storage-emulator` serves the Cloud Storage JSON API from memory on a local port.
The real clients are pointed at it by their own settings, so bigjax's code paths are
exactly those of a TPU VM: gcsfs (epath's files) and google-cloud-storage (TensorBoard)
read `STORAGE_EMULATOR_HOST`, TensorStore (Orbax's checkpoint arrays) reads
`TENSORSTORE_GCS_HTTP_URL`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
import sys
from collections.abc import Iterator
from http import HTTPStatus

import pytest


def _send_generation_headers(server_module) -> None:
    """Makes the emulator's media downloads carry `x-goog-generation` and
    `x-goog-metageneration`, as Cloud Storage's do: TensorStore reads an object's
    generation from them (without them it reports "Malformed StorageGeneration")."""
    objects = server_module.objects
    download = objects.download
    if getattr(download, "sends_generation", False):
        return

    def download_with_generation(request, response, storage, *args, **kwargs):
        download(request, response, storage, *args, **kwargs)
        if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
            obj = storage.get_file_obj(request.params["bucket_name"],
                                       request.params["object_id"])
            response["x-goog-generation"] = str(obj["generation"])
            response["x-goog-metageneration"] = str(obj["metageneration"])

    download_with_generation.sends_generation = True
    objects.download = download_with_generation  # reached through objects.get(alt=media)
    for _, handlers in server_module.HANDLERS:  # the routes that name it directly
        for method, handler in handlers.items():
            if handler is download:
                handlers[method] = download_with_generation


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(bucket: str) -> Iterator[dict[str, str]]:
    """Runs the server with an empty `bucket`; yields the environment variables that
    point the clients at it (set them in this process and pass them to subprocesses)."""
    server_module = pytest.importorskip(
        "gcp_storage_emulator.server",
        reason="gcp-storage-emulator (in the test extra) runs the gs:// workdir tests")
    if importlib.util.find_spec("gcsfs") is None:  # not imported: it reads the settings below
        pytest.skip("the gcs extra (gcsfs) reads and writes gs:// paths")
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
    _send_generation_headers(server_module)
    # The same settings for this process, also when the clients were imported already.
    import fsspec

    fsspec.register_implementation("gs", "gcsfs.core.GCSFileSystem", clobber=True)
    metadata = sys.modules.get("google.auth.compute_engine._metadata")
    if metadata is not None:
        metadata._NO_GCE_CHECK = True
    port = _free_port()
    server = server_module.create_server("127.0.0.1", port, in_memory=True,
                                         default_bucket=bucket)
    server.start()
    # A client that hangs up early is normal (TensorStore cancels reads it no longer needs).
    server._api._httpd.handle_error = lambda request, client_address: None
    url = f"http://127.0.0.1:{port}"
    try:
        yield {
            "STORAGE_EMULATOR_HOST": url,
            "TENSORSTORE_GCS_HTTP_URL": url,
            # No Google credentials here: never wait for a metadata server, and skip
            # gcsfs's zonal-bucket probe (it asks the control-plane API, which the
            # emulator lacks).
            "NO_GCE_CHECK": "true",
            "GCE_METADATA_ROOT": "127.0.0.1:1",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        }
    finally:
        server.stop()
