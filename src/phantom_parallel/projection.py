"""Projection of TP and PP step time and energy to many devices, with bands and sensitivity.

Everything here is **modelled** (:mod:`phantom_parallel.timing` on a hardware profile of
:mod:`phantom_parallel.hardware`); nothing is measured. Strong scaling keeps the width ``n``
fixed (``m = n / p`` shrinks); weak scaling keeps ``m = n / p_0`` per rank fixed (``n = m p``,
``p_0`` the first rank count). Uncertainty bands: time (and energy) is monotone in each constant,
so the band is the model with every constant at the end of its range that lowers (raises) it.
The sensitivity table moves one constant at a time to both ends of its range and reports the
PP/TP ratios of time and energy at one rank count (``--sensitivity-p``: default 256 where
the layout allows it, else the largest allowed ``--ranks``), marking the constants whose
range alone can flip which strategy is cheaper.

CLI: ``phantom-costs project --hardware NAME --width N --ghosts K --ranks ... [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phantom_parallel import cli
from phantom_parallel.constants import DTYPE_BYTES
from phantom_parallel.costs import FFNShape, predict
from phantom_parallel.hardware import Profile, ProfileError, load
from phantom_parallel.layout import validate_layout
from phantom_parallel.timing import MODES, step_time

DEFAULT_RANKS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
DEFAULT_SENSITIVITY_P = 256


def shapes(width: int, ghosts: int, ranks: Sequence[int], scaling: str, *, layers: int = 4,
           batch: int = 1024, d_in: int = 64, d_out: int = 8, elem_bytes: int = 4,
           flag: str = "--ranks") -> list[FFNShape]:
    """One :class:`FFNShape` per rank count; ``ValueError`` naming the flag and value when
    ``n % p != 0`` or ``k > m`` at some ``p`` (before anything is computed). ``flag``: the
    option the rank counts came from."""
    if scaling not in ("strong", "weak"):
        raise ValueError(f"--scaling {scaling!r}: expected strong or weak")
    if ghosts < 1:
        raise ValueError(f"--ghosts {ghosts}: must be >= 1")
    out = []
    for p in ranks:
        if p < 1:
            raise ValueError(f"{flag} {p}: must be >= 1")
        if scaling == "weak" and width % ranks[0]:
            raise ValueError(f"--width {width} is not divisible by the first --ranks {ranks[0]}")
        n = width if scaling == "strong" else width // ranks[0] * p
        try:
            validate_layout("pp", n, p, ghosts)
        except ValueError as err:
            raise ValueError(f"{flag} {p} with --ghosts {ghosts} (--width {width}, {scaling} "
                             f"scaling): {err}") from None
        out.append(FFNShape(d_in, n, layers, d_out, batch, p, ghosts, elem_bytes))
    return out


def _model(strategy: str, shape: FFNShape, hw: Profile, mode: str):
    s = shape if strategy == "pp" and shape.p > 1 else shape.replace(ghosts=0)
    return step_time(predict(strategy, s), hw, mode=mode)


def _varied(hw: Profile) -> list[str]:
    return [k for k, c in hw.constants.items() if c.range[0] < c.range[1]]


def _band(strategy: str, shape: FFNShape, hw: Profile, mode: str, attr: str
          ) -> tuple[float, float]:
    """(low, high) of ``attr`` with every constant at the end of its range that lowers/raises it."""
    lo_vals, hi_vals = {}, {}
    for key in _varied(hw):
        lo, hi = hw.constants[key].range
        a = getattr(_model(strategy, shape, hw.with_values(**{key: lo}), mode), attr)
        b = getattr(_model(strategy, shape, hw.with_values(**{key: hi}), mode), attr)
        lo_vals[key], hi_vals[key] = (lo, hi) if a <= b else (hi, lo)
    return (getattr(_model(strategy, shape, hw.with_values(**lo_vals), mode), attr),
            getattr(_model(strategy, shape, hw.with_values(**hi_vals), mode), attr))


def project(hw: Profile, shapes_: Sequence[FFNShape], *, strategies: Sequence[str] = ("tp", "pp"),
            mode: str = "eager", scaling: str = "strong") -> list[dict[str, Any]]:
    """Modelled rows (one per strategy and shape): seconds and joules per step, the phases,
    and the ``_lo``/``_hi`` bands of ``time_s`` and ``energy_j``."""
    rows = []
    for shape in shapes_:
        for strategy in strategies:
            t = _model(strategy, shape, hw, mode)
            t_lo, t_hi = _band(strategy, shape, hw, mode, "total_s")
            e_lo, e_hi = _band(strategy, shape, hw, mode, "energy_j")
            rows.append({
                "method": "modelled", "hardware": hw.name, "scaling": scaling, "mode": mode,
                "strategy": strategy, "p": shape.p, "width": shape.width, "m": shape.m,
                "ghosts": shape.ghosts if strategy == "pp" else 0, "layers": shape.layers,
                "batch": shape.batch, "elem_bytes": shape.elem_bytes,
                "time_s": t.total_s, "time_s_lo": t_lo, "time_s_hi": t_hi,
                "energy_j": t.energy_j, "energy_j_lo": e_lo, "energy_j_hi": e_hi,
                **{k: v for k, v in t.row().items() if k not in ("total_s", "energy_j")},
            })
    return rows


def sensitivity(hw: Profile, shape: FFNShape, mode: str = "eager") -> list[dict[str, Any]]:
    """PP/TP time and energy ratios at ``shape`` with each constant at its low and high end,
    sorted by how much the energy ratio moves; ``decides`` when the range flips a ratio."""
    def ratios(h: Profile) -> tuple[float, float]:
        pp, tp = _model("pp", shape, h, mode), _model("tp", shape, h, mode)
        return pp.total_s / tp.total_s, pp.energy_j / tp.energy_j

    base_t, base_e = ratios(hw)
    out = []
    for key in _varied(hw):
        lo, hi = hw.constants[key].range
        (t_lo, e_lo), (t_hi, e_hi) = ratios(hw.with_values(**{key: lo})), \
            ratios(hw.with_values(**{key: hi}))
        flips = [name for name, a, b in (("time", t_lo, t_hi), ("energy", e_lo, e_hi))
                 if (a - 1) * (b - 1) < 0]
        out.append({"constant": key, "unit": hw.constants[key].unit, "lo": lo, "hi": hi,
                    "time_ratio_lo": t_lo, "time_ratio_hi": t_hi,
                    "energy_ratio_lo": e_lo, "energy_ratio_hi": e_hi,
                    "decides": ",".join(flips) or "-"})
    out.sort(key=lambda r: -max(abs(r["energy_ratio_hi"] - r["energy_ratio_lo"]),
                                abs(r["time_ratio_hi"] - r["time_ratio_lo"])))
    return [{"base_time_ratio": base_t, "base_energy_ratio": base_e, **r} for r in out]


def build_parser() -> argparse.ArgumentParser:
    ap = cli.parser(
        "phantom-costs project",
        "Modelled time and energy per step of TP and PP to many devices on a "
        "hardware profile (config/hardware/NAME.yaml), with bands and a sensitivity table.")
    ap.add_argument("--hardware", required=True, help="profile name or path to a .yaml")
    ap.add_argument("--width", type=int, required=True, help="hidden width n (strong) or "
                    "n at the first --ranks (weak)")
    ap.add_argument("--ghosts", type=int, required=True, help="PP ghosts per rank k")
    ap.add_argument("--ranks", type=int, nargs="+", default=list(DEFAULT_RANKS))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=1024,
                    help="samples per step B")
    ap.add_argument("--d-in", type=int, default=64)
    ap.add_argument("--d-out", type=int, default=8)
    ap.add_argument("--dtype", choices=sorted(DTYPE_BYTES), default="float32")
    ap.add_argument("--mode", choices=MODES, default="eager")
    ap.add_argument("--scaling", choices=("strong", "weak", "both"), default="both")
    ap.add_argument("--sensitivity-p", type=int, default=None,
                    help=f"p of the sensitivity table (strong scaling; default "
                         f"{DEFAULT_SENSITIVITY_P} where --width and --ghosts allow it, else the "
                         "largest --ranks that they allow)")
    ap.add_argument("--json", type=Path, help="also write everything here (into an existing "
                    "folder; an existing file is replaced, atomically)")
    return ap


def _print(rows: list[dict[str, Any]], sens: list[dict[str, Any]], p_sens: int, name: str) -> None:
    print(f"phantom-costs project: MODELLED on hardware profile {name!r} (no measurement)")
    print(f"{'scaling':7} {'strat':5} {'p':>5} {'n':>7} {'m':>6} {'step ms':>9} "
          f"{'[lo, hi]':>21} {'comm %':>6} {'J/step':>10} {'[lo, hi]':>23}")
    for r in rows:
        print(f"{r['scaling']:7} {r['strategy']:5} {r['p']:>5} {r['width']:>7} {r['m']:>6} "
              f"{r['time_s'] * 1e3:9.3f} [{r['time_s_lo'] * 1e3:9.3f},{r['time_s_hi'] * 1e3:9.3f}] "
              f"{100 * r['comm_s'] / r['time_s']:6.1f} "
              f"{r['energy_j']:10.4g} [{r['energy_j_lo']:10.4g},{r['energy_j_hi']:10.4g}]")
    if sens:
        print(f"\nsensitivity at p = {p_sens} (strong): PP/TP ratio with one constant at each end "
              f"of its range; base time {sens[0]['base_time_ratio']:.3f}, "
              f"energy {sens[0]['base_energy_ratio']:.3f}")
        print(f"{'constant':28} {'time lo':>8} {'time hi':>8} {'energy lo':>9} {'energy hi':>9} "
              "decides")
        for r in sens:
            print(f"{r['constant']:28} {r['time_ratio_lo']:8.3f} {r['time_ratio_hi']:8.3f} "
                  f"{r['energy_ratio_lo']:9.3f} {r['energy_ratio_hi']:9.3f} {r['decides']}")


def _sensitivity_p(args: argparse.Namespace) -> int | None:
    """``--sensitivity-p``, or when not given :data:`DEFAULT_SENSITIVITY_P` if ``--width`` and
    ``--ghosts`` allow it under strong scaling, else the largest such ``--ranks`` (None: none)."""
    if args.sensitivity_p is not None:
        return args.sensitivity_p
    for p in (DEFAULT_SENSITIVITY_P, *sorted(args.ranks, reverse=True)):
        try:
            validate_layout("pp", args.width, p, args.ghosts)
        except ValueError:
            continue
        return p
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``phantom-costs project``: print the projection, and write it with ``--json``."""
    args = build_parser().parse_args(argv)

    def bad(msg: str) -> int:
        print(f"phantom-costs project: error: {msg}", file=sys.stderr)
        return 2

    msg = (cli.minimum_error({"--width": args.width, "--ghosts": args.ghosts,
                              "--ranks": min(args.ranks), "--batch-size": args.batch,
                              "--d-in": args.d_in, "--d-out": args.d_out,
                              "--sensitivity-p": args.sensitivity_p}, 1)
           or cli.minimum_error({"--layers": args.layers}, 0)
           or cli.output_error("--json", args.json))
    if msg:
        return bad(msg)
    try:
        hw = load(args.hardware)
    except ProfileError as err:
        return bad(str(err))
    kw = dict(layers=args.layers, batch=args.batch, d_in=args.d_in, d_out=args.d_out,
              elem_bytes=DTYPE_BYTES[args.dtype])
    scalings = ("strong", "weak") if args.scaling == "both" else (args.scaling,)
    try:
        grids = {s: shapes(args.width, args.ghosts, args.ranks, s, **kw) for s in scalings}
        if (p_sens := _sensitivity_p(args)) is None:
            return bad(f"--sensitivity-p: neither {DEFAULT_SENSITIVITY_P} nor any --ranks is a "
                       f"strong-scaling p for --width {args.width} with --ghosts {args.ghosts}; "
                       "give one")
        sens_shape = shapes(args.width, args.ghosts, [p_sens], "strong", flag="--sensitivity-p",
                            **kw)[0]
    except ValueError as err:
        return bad(str(err))
    rows = [r for s, grid in grids.items() for r in project(hw, grid, mode=args.mode, scaling=s)]
    sens = sensitivity(hw, sens_shape, args.mode)
    _print(rows, sens, p_sens, hw.name)
    if args.json is not None:
        doc = {"method": "modelled", "hardware": hw.name, "profile": str(hw.path),
               "command": ["phantom-costs", "project", *(sys.argv[2:] if argv is None else argv)],
               "constants": {k: {"value": c.value, "unit": c.unit, "source": c.source,
                                 "range": list(c.range)} for k, c in hw.constants.items()},
               "rows": rows, "sensitivity_p": p_sens, "sensitivity": sens}
        if err := cli.write_output("--json", args.json, json.dumps(doc, indent=1) + "\n"):
            print(f"phantom-costs project: error: {err}", file=sys.stderr)
            return 1
    return 0
