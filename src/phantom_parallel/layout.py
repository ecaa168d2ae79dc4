"""The one validity check of a (strategy, n, p, k) layout, torch-free: used by the models,
the trainer, the benchmark, the cost model, the projection and the workflow."""

from __future__ import annotations

from phantom_parallel.constants import STRATEGIES


def reads_all_ghosts(world_size: int) -> bool:
    """Whether every PP rank's decompression GEMM reads all p k gathered ghost rows (p > 2),
    rank r's own k against D_r's zero block D_rr (``layers.PhantomLinear``), rather than only
    its peers' (p - 1)k. With p > 2 an interior rank's peers lie on both sides of its own
    ghosts, so it reads all, and ranks 0 and p-1 do too, so that every rank issues the same
    kernels; with p = 2 each rank reads its one peer's k. Every rank does the same work."""
    return world_size > 2


def own_ghosts(rank: int, ghosts: int) -> slice:
    """Rank ``rank``'s k rows of the gathered ghosts G^T (p k x B), which are also the columns
    of the zero block D_rr in its stored D_r (m x pk, p > 2)."""
    return slice(rank * ghosts, (rank + 1) * ghosts)


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
