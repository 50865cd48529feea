"""The device mesh (`data`, `fsdp`, `tensor` axes), logical-axis rules, batch placement.

Params and activations of the transformer models carry logical axis names
(`batch`, `embed`, `mlp`, `heads`, `kv`, `vocab`, `length`, `layers`); the
rules map them to mesh axes. Arrays with no names (MLP, CNN params) are split
over `fsdp` along their largest divisible dimension when the mesh has an `fsdp`
axis (`fsdp_sharding`), else replicated. Every step runs under `mesh_context`,
so the models' activation constraints take effect.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger("bigjax")

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

DEFAULT_RULES = (
    ("batch", BATCH_AXES),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("vocab", "tensor"),
    ("kv", None),
    ("length", None),
    ("layers", None),
)


def mesh_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
    """Axis sizes from the config, one of which may be -1 (fill with the rest)."""
    sizes = [int(mesh_config.get(axis, 1)) for axis in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"config.mesh {dict(mesh_config)}: at most one axis may be -1.")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if num_devices % known:
            raise ValueError(f"config.mesh {dict(mesh_config)} does not divide {num_devices} "
                             "devices.")
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ValueError(f"config.mesh {dict(mesh_config)} needs {math.prod(sizes)} devices; "
                         f"{num_devices} are available. Use -1 for one axis to fill.")
    return tuple(sizes)


def make_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
    """A `Mesh` over all devices (of all processes) with axes `data, fsdp, tensor`."""
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(mesh_config, len(devices))
    try:
        device_array = mesh_utils.create_device_mesh(shape, devices)
    except (AssertionError, ValueError, NotImplementedError) as err:
        log.info("Mesh %s: no topology-aware device order (%s); using the devices in order.",
                 shape, err)
        device_array = np.asarray(devices).reshape(shape)
    return Mesh(device_array, MESH_AXES)


def rules_from_config(config: ml_collections.ConfigDict):
    """`config.sharding.rules` as a tuple of (logical name, mesh axes) pairs, or the defaults."""
    rules = config.get("sharding", {}).get("rules") if "sharding" in config else None
    if not rules:
        return DEFAULT_RULES
    return tuple((name, tuple(axes) if isinstance(axes, list) else axes) for name, axes in rules)


def state_shardings(abstract_boxed_state, mesh: Mesh, rules):
    """NamedShardings for a state whose params carry logical names (boxed, from eval_shape).

    A dimension whose size the mesh axes of its rule do not divide (e.g. 2 heads on a
    `tensor` axis of 4) is replicated instead of failing; one log line lists them.
    """
    specs = nn.get_partition_spec(abstract_boxed_state)
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    shapes = nn.meta.unbox(abstract_boxed_state)
    replicated_dims: list[str] = []

    def fit(path, named, x):
        if not named.spec and mesh.shape["fsdp"] > 1:
            named = fsdp_sharding(x.shape, mesh)
        fitted, dropped = divisible_sharding(named, x.shape, mesh)
        replicated_dims.extend(f"{jax.tree_util.keystr(path)} {d}" for d in dropped)
        return fitted

    fitted = jax.tree_util.tree_map_with_path(fit, shardings, shapes)
    if replicated_dims:
        log.info("Replicated instead of sharded (the mesh axes do not divide them), %d dims: "
                 "%s%s", len(replicated_dims), "; ".join(replicated_dims[:6]),
                 " ..." if len(replicated_dims) > 6 else "")
    return fitted


# Arrays without logical names smaller than this stay replicated under FSDP.
FSDP_MIN_ELEMENTS = 2**12


def fsdp_sharding(shape: tuple[int, ...], mesh: Mesh) -> NamedSharding:
    """For arrays without logical names (MLP, CNN): big_vision's FSDP tactic, the largest
    dimension that the `fsdp` axis divides is sharded over it (arrays with fewer than
    FSDP_MIN_ELEMENTS elements, or no such dimension, stay replicated)."""
    size = mesh.shape["fsdp"]
    spec: list = [None] * len(shape)
    if math.prod(shape) >= FSDP_MIN_ELEMENTS:
        for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
            if shape[dim] % size == 0:
                spec[dim] = "fsdp"
                break
    return NamedSharding(mesh, PartitionSpec(*spec))


def divisible_sharding(named: NamedSharding, shape: tuple[int, ...],
                       mesh: Mesh) -> tuple[NamedSharding, list[str]]:
    """`named` with every dimension its mesh axes cannot divide replicated.

    Returns `(sharding, dropped)`, `dropped` describing each replicated dim.
    """
    spec = list(named.spec) + [None] * (len(shape) - len(named.spec))
    dropped = []
    for dim, axes in enumerate(spec):
        if axes is None:
            continue
        group = axes if isinstance(axes, tuple) else (axes,)
        size = math.prod(mesh.shape[a] for a in group)
        if shape[dim] % size:
            dropped.append(f"dim {dim} of {tuple(shape)} over {axes} ({size})")
            spec[dim] = None
    if not dropped:
        return named, []
    return NamedSharding(mesh, PartitionSpec(*spec)), dropped


@contextlib.contextmanager
def mesh_context(mesh: Mesh, rules) -> Iterator[None]:
    """Makes `mesh` the current mesh and `rules` the logical-axis rules.

    Flax's `nn.with_logical_constraint` only takes effect under `jax.set_mesh`
    (the older `with mesh:` leaves it a no-op), so init, every train step and every
    eval step are traced inside this context.
    """
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full value on every device (metrics, scalars)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
    """Examples split over `data` x `fsdp`; `leading_axes` unsharded axes come first."""
    return NamedSharding(mesh, PartitionSpec(*([None] * leading_axes), BATCH_AXES))


def process_rows(mesh: Mesh, global_size: int) -> slice:
    """The rows of a `[global_size, ...]` batch that this process's devices hold.

    Processes whose devices share batch shards (a `tensor` axis across
    processes) get the same rows. A non-contiguous set of rows is refused.
    """
    index_map = batch_sharding(mesh).addressable_devices_indices_map((global_size,))
    spans = sorted({(s[0].start or 0, global_size if s[0].stop is None else s[0].stop)
                    for s in index_map.values()})
    start, stop = spans[0]
    for a, b in spans[1:]:
        if a > stop:
            raise ValueError("This process's devices hold non-contiguous rows of the batch; "
                             "order the mesh so each process's devices are adjacent on the "
                             "data/fsdp axes.")
        stop = max(stop, b)
    return slice(start, stop)


def num_batch_shards(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def check_batch_size(mesh: Mesh, size: int, name: str) -> None:
    """A batch must split evenly over the mesh's batch axes (data x fsdp)."""
    shards = num_batch_shards(mesh)
    if size % shards:
        raise ValueError(f"{name}={size} must be a multiple of the {shards} devices on the "
                         "mesh's batch axes (data x fsdp).")


def put_batch(batch: dict, mesh: Mesh, leading_axes: int = 0) -> dict:
    """Assembles the global batch on the mesh from each process's local rows."""
    sharding = batch_sharding(mesh, leading_axes)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def describe(tree, max_lines: int = 20) -> str:
    """One line per array: path, shape, and partition spec (for the run log)."""
    lines = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        spec = getattr(getattr(leaf, "sharding", None), "spec", None)
        lines.append(f"  {jax.tree_util.keystr(path)} {tuple(leaf.shape)} {spec}")
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"  ... {len(lines) - max_lines} more"]
    return "\n".join(lines)
