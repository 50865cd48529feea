"""Logical axis names shared by all transformer layers.

Params and activations are annotated with these names; a sharding config maps
them to mesh axes (``data``, ``fsdp``, ``tensor``) with ``nn.logical_axis_rules``.
Without rules the annotations are no-ops.

When one mesh axis is claimed by two dims of the same array, flax gives it to
the first dim and leaves the later one unsharded, so e.g. rules
``("batch", ("data", "fsdp"))`` and ``("embed", "fsdp")`` shard params over
``fsdp`` on ``embed`` while activations ``[batch, length, embed]`` keep
``embed`` replicated.
"""

BATCH = "batch"  # examples in a batch (activations only)
LENGTH = "length"  # sequence positions (activations only)
EMBED = "embed"  # model width (params and activations)
MLP = "mlp"  # feed-forward hidden width
HEADS = "heads"  # attention heads
KV = "kv"  # per-head feature dim
VOCAB = "vocab"  # token vocabulary
LAYERS = "layers"  # stacked layer axis of scanned params
