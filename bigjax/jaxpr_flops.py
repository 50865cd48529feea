"""Model FLOPs counted from a function's jaxpr: every matmul and convolution, nothing else.

The analytic count MFU divides by, for any model: ``jax.make_jaxpr`` traces the forward
pass (no compilation, no device), and each ``dot_general`` and ``conv_general_dilated``
in it is counted from its shapes at 2 FLOPs per multiply-add. That is what the
hand-written formulas of MaxText, PaLM (appendix B) and Kaplan et al. count: dense
layers, convolutions and attention's ``q k^T`` and ``p v`` (which carry the
sequence-length term); norms (BatchNorm included), activations, softmax, pooling,
residual adds, the loss and the optimizer are left out (a few percent).

Training: the backward pass of a matmul ``y = a @ b`` computes ``dL/da`` and ``dL/db``,
each a matmul of the forward's size, but only for operands that depend on the params.
So a matmul costs its forward FLOPs times 1 + (its operands that depend on the params):
3x for a hidden layer or attention's ``q k^T``, 2x for a first layer applied to the
input pixels (whose gradient nobody needs). "6N per token" is the same rule for a
transformer, whose first matmul already reads trained embeddings. Rematerialisation's
recomputation is not counted (model FLOPs, not hardware FLOPs).

Nested jaxprs are followed: ``jit`` / ``pjit``, ``remat``, custom derivatives, ``cond``
(the costliest branch) and ``scan`` (its body times its length, unlike XLA's
``cost_analysis``, which counts a loop body once). A ``while`` loop's trip count is not
known from its jaxpr: its body is counted once, every operand taken as trained.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
from jax.extend import core


def dot_general_flops(lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...],
                      dimension_numbers) -> int:
    """2 x batch x lhs-free x rhs-free x contracted: ``[b, m, k] @ [b, k, n]`` is
    ``2 * b * m * k * n``."""
    (_, rhs_contract), (_, rhs_batch) = dimension_numbers
    rhs_free = math.prod(d for i, d in enumerate(rhs_shape)
                         if i not in rhs_contract and i not in rhs_batch)
    return 2 * math.prod(lhs_shape) * rhs_free


def conv_flops(out_shape: tuple[int, ...], rhs_shape: tuple[int, ...],
               dimension_numbers) -> int:
    """2 x output elements x (input features per group x kernel window): the kernel's
    size over its output features is what each output element multiplies and adds."""
    out_features = rhs_shape[dimension_numbers.rhs_spec[0]]
    return 2 * math.prod(out_shape) * (math.prod(rhs_shape) // out_features)


@dataclasses.dataclass
class Flops:
    """Matmul and convolution FLOPs: ``forward`` (one evaluation) and ``train`` (forward
    plus the backward pass's gradients, per the module doc)."""

    forward: int = 0
    train: int = 0

    def __iadd__(self, other: Flops) -> Flops:
        self.forward += other.forward
        self.train += other.train
        return self

    def times(self, n: int) -> Flops:
        return Flops(self.forward * n, self.train * n)


def _closed(jaxpr) -> core.Jaxpr:
    return jaxpr.jaxpr if isinstance(jaxpr, core.ClosedJaxpr) else jaxpr


def _count(jaxpr: core.Jaxpr, trained: list[bool]) -> tuple[Flops, list[bool]]:
    """FLOPs of ``jaxpr`` whose invars depend on the params where ``trained`` says;
    returns them and which outvars depend on the params."""
    depends = {v: t for v, t in zip(jaxpr.invars, trained, strict=True)}

    def dep(v) -> bool:
        return not isinstance(v, core.Literal) and depends.get(v, False)

    total = Flops()
    for eqn in jaxpr.eqns:
        ins = [dep(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name in ("dot_general", "conv_general_dilated"):
            if name == "dot_general":
                lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
                flops = dot_general_flops(lhs, rhs, eqn.params["dimension_numbers"])
            else:
                flops = conv_flops(eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape,
                                   eqn.params["dimension_numbers"])
            total += Flops(flops, flops * (1 + sum(ins[:2])))
        elif name == "cond":  # the costliest branch; invars[0] is the branch index
            counts = [_count(_closed(b), ins[1:])[0] for b in eqn.params["branches"]]
            total += max(counts, key=lambda f: f.train)
        elif name == "scan":
            total += _count_scan(eqn, ins)
        elif name == "while":
            for key in ("cond_jaxpr", "body_jaxpr"):
                sub = _closed(eqn.params[key])
                total += _count(sub, [True] * len(sub.invars))[0]
        outs = [any(ins)] * len(eqn.outvars)  # unless a sub-jaxpr says which
        if name not in ("dot_general", "conv_general_dilated", "cond", "scan", "while"):
            for value in eqn.params.values():
                if isinstance(value, (core.ClosedJaxpr, core.Jaxpr)):
                    sub = _closed(value)
                    # jit, remat, custom_jvp/vjp: the sub-jaxpr's invars are the eqn's
                    # (a custom_vjp's may also take its residual functions' consts).
                    sub_ins = ins[-len(sub.invars):] if sub.invars else []
                    if len(sub_ins) < len(sub.invars):
                        sub_ins = [True] * len(sub.invars)
                    flops, sub_outs = _count(sub, sub_ins)
                    total += flops
                    if len(sub_outs) == len(eqn.outvars):
                        outs = sub_outs
        for v, out in zip(eqn.outvars, outs, strict=True):
            depends[v] = out
    return total, [dep(v) for v in jaxpr.outvars]


def _count_scan(eqn, ins: list[bool]) -> Flops:
    """A scan's body times its length; a carry that comes to depend on the params in one
    iteration does in the next (iterated to the fixed point; such a carry then counts as
    trained in every iteration, the first included: a slight overcount)."""
    body = _closed(eqn.params["jaxpr"])
    consts, carry = eqn.params.get("num_consts"), eqn.params.get("num_carry")
    if consts is None or carry is None:  # a jax naming them otherwise: all inputs trained
        return _count(body, [True] * len(body.invars))[0].times(eqn.params["length"])
    trained = list(ins)
    while True:
        flops, outs = _count(body, trained)
        grown = [t or o for t, o in zip(trained[consts:consts + carry], outs[:carry],
                                        strict=True)]
        if grown == trained[consts:consts + carry]:
            return flops.times(eqn.params["length"])
        trained[consts:consts + carry] = grown


def jaxpr_flops(jaxpr: core.Jaxpr | core.ClosedJaxpr, trained: list[bool] | None = None
                ) -> Flops:
    """Matmul and convolution FLOPs of ``jaxpr``; ``trained[i]``: invar i depends on the
    params (default: all do)."""
    jaxpr = _closed(jaxpr)
    return _count(jaxpr, trained if trained is not None else [True] * len(jaxpr.invars))[0]


def function_flops(fn: Callable, params: Any, *args: Any) -> Flops:
    """Matmul and convolution FLOPs of ``fn(params, *args)``, training with respect to
    ``params`` (a pytree; ``args`` are not trained). Arrays or ``jax.ShapeDtypeStruct``s:
    only shapes are used."""
    jaxpr = jax.make_jaxpr(fn)(params, *args)
    n_params = len(jax.tree.leaves(params))
    n_args = len(jax.tree.leaves(args))
    return jaxpr_flops(jaxpr, [True] * n_params + [False] * n_args)
