"""The one validity check of a (strategy, n, p, k) layout, torch-free: used by the models,
the trainer, the benchmark, the cost model, the projection and the workflow."""

from __future__ import annotations

from phantom_parallel.constants import STRATEGIES


def interior_rank(rank: int, world_size: int) -> bool:
    """Whether PP rank ``rank`` of p has peers on both sides (0 < r < p-1): its decompression
    reads all p k gathered ghost rows against D_r widened with k zero columns
    (``layers.PhantomLinear.widen``), ranks 0 and p-1 only the peers' (p-1)k."""
    return 0 < rank < world_size - 1


def busiest_rank(world_size: int) -> int:
    """A rank with the most work in a PP step of p ranks: an interior one (1) for p > 2, else
    0. TP's and the serial model's ranks all do the same work."""
    return 1 if world_size > 2 else 0


def validate_layout(strategy: str, width: int, world_size: int, ghosts: int | None) -> None:
    """Raise ValueError naming the value unless ``strategy`` runs with width ``n``, ``p`` ranks
    and ``k`` ghosts. ``ghosts`` is read for "pp" only (any 1 <= k <= n/p, also for p = 1);
    "tp" has no rule beyond ``n % p == 0``, so ``validate_layout("tp", n, p, None)`` is the
    check of a shape alone."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if world_size < 1:
        raise ValueError(f"the number of ranks p={world_size} must be >= 1")
    if strategy == "serial" and world_size != 1:
        raise ValueError(f"strategy 'serial' runs on 1 process, got world size p={world_size}")
    if width % world_size:
        raise ValueError(f"width n={width} is not divisible by the number of ranks p={world_size}")
    if strategy == "pp":
        m = width // world_size
        if ghosts is None or not 1 <= ghosts <= m:
            raise ValueError(f"ghosts k={ghosts} must satisfy 1 <= k <= m = n/p = {width}/{world_size} "
                             f"= {m} for strategy 'pp'")
