"""Time of one collective call on ``p`` devices of a hardware profile (seconds).

Payload conventions are those of :mod:`phantom_parallel.costs`: all-reduce counts the tensor
``S``; all-gather the local chunk ``S`` (the gathered output is ``p S``); reduce-scatter the full
input ``S`` (``p`` chunks). With ``N`` the full buffer (all-reduce, reduce-scatter: ``S``;
all-gather: ``p S``), latency ``a`` per message step and bandwidth ``b`` per device and direction:

* ring: all-reduce ``2 (p-1) a + 2 (p-1)/p N / b``; all-gather and reduce-scatter
  ``(p-1) a + (p-1)/p N / b``;
* tree (double binary tree for all-reduce, recursive doubling/halving for the others):
  all-reduce ``2 ceil(log2 p) a + 2 N / b``; all-gather/reduce-scatter
  ``ceil(log2 p) a + N / b`` (no ``(p-1)/p`` saving);

and the faster of the two is taken (the crossover by message size). Latency grows with ``p``
through the step counts. When ``p`` exceeds the devices of one node the collective is
hierarchical: an intra-node phase over the node's ``g`` devices (``intra_bandwidth`` /
``intra_latency``; ``package_bandwidth`` when all ranks share one package) and an inter-node
phase over ``p / g`` nodes in which each device drives its share of the node's injection
bandwidth (``injection_bandwidth_per_node / g``, ``inter_latency``). Every call also pays
``collective_launch_s`` once.
"""

from __future__ import annotations

import math

from phantom_parallel.hardware import Profile

OPS = ("all_reduce", "all_gather", "reduce_scatter")
"""Collectives modelled here (the names of :data:`phantom_parallel.costs.COLLECTIVES`)."""


def flat(op: str, full_bytes: float, p: int, latency_s: float, bandwidth: float,
         algorithm: str = "best") -> float:
    """Seconds of ``op`` over ``p`` devices on one kind of link.

    Args:
        op: ``all_reduce``, ``all_gather`` or ``reduce_scatter``.
        full_bytes: ``N``, the full buffer (see module docstring), bytes.
        p: devices taking part.
        latency_s: per message step, s. bandwidth: per device and direction, B/s.
        algorithm: ``ring``, ``tree`` or ``best`` (the faster).
    """
    if op not in OPS:
        raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")
    if p <= 1:
        return 0.0
    steps = math.ceil(math.log2(p))
    twice = 2 if op == "all_reduce" else 1
    ring = twice * ((p - 1) * latency_s + (p - 1) / p * full_bytes / bandwidth)
    tree = twice * (steps * latency_s + full_bytes / bandwidth)
    if algorithm == "ring":
        return ring
    if algorithm == "tree":
        return tree
    if algorithm == "best":
        return min(ring, tree)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected ring, tree or best")


def full_bytes(op: str, payload_bytes: float, p: int) -> float:
    """``N`` from the payload as :mod:`phantom_parallel.costs` counts it."""
    return payload_bytes * p if op == "all_gather" else payload_bytes


def collective_s(op: str, payload_bytes: float, p: int, hw: Profile) -> float:
    """Seconds of one call of ``op`` with ``payload_bytes`` (costs convention) on ``p`` devices.

    Flat within a node (or a package), hierarchical across nodes: all-reduce = intra
    reduce-scatter + inter all-reduce of ``N / g`` + intra all-gather; all-gather = inter
    all-gather of the ``g``-th shares + intra all-gather; reduce-scatter mirrors it.
    """
    if p <= 1:
        return 0.0
    n = full_bytes(op, payload_bytes, p)
    g = int(hw["devices_per_node"])
    launch = hw["collective_launch_s"]
    package = int(hw.get("devices_per_package", 0) or 0)
    if package and p <= package:
        return launch + flat(op, n, p, hw["intra_latency"], hw["package_bandwidth"])
    if p <= g:
        return launch + flat(op, n, p, hw["intra_latency"], hw["intra_bandwidth"])
    nodes = math.ceil(p / g)
    a_in, b_in = hw["intra_latency"], hw["intra_bandwidth"]
    a_out, b_out = hw["inter_latency"], hw["injection_bandwidth_per_node"] / g
    if op == "all_reduce":
        t = (flat("reduce_scatter", n, g, a_in, b_in) + flat("all_reduce", n / g, nodes, a_out, b_out)
             + flat("all_gather", n, g, a_in, b_in))
    else:  # all-gather / reduce-scatter: one inter phase on 1/g of the buffer, one intra phase
        t = flat(op, n / g, nodes, a_out, b_out) + flat(op, n, g, a_in, b_in)
    return launch + t
