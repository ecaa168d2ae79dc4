"""The run table of the selected scale (RUNS: one entry per strategy, p, n, k, seed), the
same-loss plan, the hardness pair and the learning-rate sweep (LR_SWEEP), built from the
validated config of common.smk; a bad entry fails naming its config key."""


def build_runs(sc, scale):
    """The training runs of one scale: scaling grid, serial baselines, same-loss runs and their
    comparators, quality-cost sweeps, hardness pair, init ablation."""
    _check_training(sc, scale)
    runs = {}
    grid = sc["scaling"]
    base = f"scales.{scale}.scaling"
    for n in grid["widths"]:
        if grid.get("serial_baseline", True):
            _add_run(runs, f"{base}.serial_baseline", "serial", 1, n, 0, "scaling")
        for strategy in grid["strategies"]:
            for p in grid["ranks"]:
                ghosts = grid["ghosts"] if strategy == "pp" else [0]
                for k in ghosts:
                    _add_run(
                        runs,
                        base,
                        strategy,
                        p,
                        n,
                        k,
                        "scaling",
                        ghost_key=f"{base}.ghosts",
                    )
    qc = sc.get("quality_cost") or {}
    if "ghost_sweep" in qc:
        g, key = qc["ghost_sweep"], f"scales.{scale}.quality_cost.ghost_sweep"
        for n in g["widths"]:
            for p in g["ranks"]:
                for k in g["ghosts"]:
                    _add_run(
                        runs,
                        key,
                        "pp",
                        p,
                        n,
                        k,
                        "quality_cost",
                        ghost_key=f"{key}.ghosts",
                    )
    if "width_sweep" in qc:
        w, key = qc["width_sweep"], f"scales.{scale}.quality_cost.width_sweep"
        for strategy in w["strategies"]:
            for p in [1] if strategy == "serial" else w["ranks"]:
                for n in w["widths"]:
                    _add_run(runs, key, strategy, p, n, 0, "quality_cost")
    hard = hardness_plan(sc, scale, runs)
    if hard:
        for n in (hard["width"], hard["width"] // 2):
            _add_run(
                runs,
                f"scales.{scale}.hardness",
                hard["strategy"],
                hard["ranks"],
                n,
                0,
                "hardness",
            )
    abl = sc.get("init_ablation") or {}
    if abl.get("enabled", False):
        for i, r in enumerate(abl.get("runs", [])):
            key = f"scales.{scale}.init_ablation.runs[{i}]"
            if r["strategy"] != "pp":
                _fail(key, f"the init ablation is for pp runs, got {r['strategy']}")
            for init in abl.get("inits", ["fan-in", "variance"]):
                _add_run(
                    runs,
                    key,
                    "pp",
                    r["ranks"],
                    r["width"],
                    r.get("ghosts", 0),
                    "init_ablation",
                    init,
                )
    plan = same_loss_plan(sc, scale, runs)
    for cfg, _role in plan["judged"]:
        _add_run(runs, f"scales.{scale}.same_loss.runs", *cfg, "same_loss")
    if plan["reference"]:
        _add_run(
            runs,
            f"scales.{scale}.same_loss.target.reference",
            *plan["reference"],
            "same_loss_reference",
        )
    return runs, plan, hard


def hardness_plan(sc, scale, runs):
    """The hardness pair of a scale: {strategy, ranks, width, margin}, or None (disabled/absent)."""
    h = sc.get("hardness")
    if not h or not h.get("enabled", True):
        return None
    key = f"scales.{scale}.hardness"
    width = h.get("width")
    if width is None:
        widths = [r["n"] for r in runs.values()]
        widths += [r["width"] for r in sc["same_loss"]["runs"]]
        width = max(widths)
    if width % 2:
        _fail(f"{key}.width", f"{width} is odd: no student of half the width")
    return dict(
        strategy=h.get("strategy", "serial"),
        ranks=h.get("ranks", 1),
        width=width,
        margin=h.get("margin", 0.1),
    )


def _label(cfg):
    strategy, p, n, k = cfg
    return f"{strategy} p={p} n={n}" + (f" k={k}" if strategy == "pp" else "")


def same_loss_plan(sc, scale, runs):
    """The judged configurations (with their role), the target's reference configuration and
    tolerance, or the absolute target. The reference must be a configuration of the scale
    (a run of another block) and must not be judged."""
    sl = sc["same_loss"]
    key = f"scales.{scale}.same_loss"
    judged = []
    for i, r in enumerate(sl["runs"]):
        cfg = config_of(r)
        _check_config(f"{key}.runs[{i}]", *cfg)
        if cfg not in [c for c, _ in judged]:
            judged.append((cfg, "run"))
    if sl.get("comparators", True):
        for (strategy, p, n, _k), _role in list(judged):
            if strategy != "pp":
                continue
            for cfg, role in (
                (("serial", 1, n, 0), "serial comparator"),
                (("tp", p, n, 0), "tp comparator"),
            ):
                if cfg not in [c for c, _ in judged]:
                    judged.append((cfg, role))
    plan = dict(judged=judged, reference=None, tolerance=None, target_val_loss=None)
    if sl.get("target_val_loss") is not None:
        plan["target_val_loss"] = float(sl["target_val_loss"])
        return plan
    target = sl.get("target") or {}
    judged_cfgs = {c for c, _ in judged}
    existing = {
        config_key(r["strategy"], r["p"], r["n"], r["k"])
        for r in runs.values()
        if not r["ablation_arm"]
    }
    if target.get("reference"):
        ref = config_of(target["reference"])
        if ref not in existing:
            _fail(
                f"{key}.target.reference",
                f"{_label(ref)} is no configuration of scale {scale!r} (runs of scaling, "
                "quality_cost or hardness); add it to one of them or name another",
            )
        if ref in judged_cfgs:
            _fail(
                f"{key}.target.reference",
                f"{_label(ref)} is one of the judged configurations",
            )
    else:
        tps = sorted(
            (c for c in existing if c[0] == "tp" and c not in judged_cfgs),
            key=lambda c: (-c[2], c[1]),
        )
        if not tps:
            _fail(
                f"{key}.target.reference",
                f"no TP configuration of scale {scale!r} outside the judged runs to take as the "
                "reference; name one (strategy, ranks, width) or set target_val_loss",
            )
        ref = tps[0]
    plan["reference"] = ref
    plan["tolerance"] = float(target.get("tolerance", 0.02))
    return plan


RUNS, SAME_LOSS, HARDNESS = build_runs(SC, SCALE)


# ---------------------------------------------------------------- learning-rate sweep

# Model families of the learning-rate sweep: strategy -> family. Serial, TP, DTensor and FSDP
# train the same dense FFN (the same function of the same parameters); PP is another model.
FAMILIES = {
    "serial": "dense",
    "tp": "dense",
    "dtensor": "dense",
    "fsdp": "dense",
    "pp": "pp",
}


def lr_sweep_plan(sc, scale, runs):
    """The sweep runs of a scale, {name: spec} (spec: run, family, lr, strategy, p, n, k,
    seed, init, steps), or {} when lr_sweep is absent or disabled. Refuses, naming the key, an
    empty `values` or `seeds`, a learning rate <= 0, `steps` outside one to all training
    steps, a family that is not one of FAMILIES' values, a configuration of another family,
    and a family with runs in the scale but no sweep configuration."""
    sw = sc.get("lr_sweep") or {}
    if not sw.get("enabled", True) or not sw:
        return {}
    key = f"scales.{scale}.lr_sweep"
    values, seeds, fams = (
        sw.get("values", []),
        sw.get("seeds", []),
        sw.get("families", {}),
    )
    if not values:
        _fail(f"{key}.values", "empty: list the learning rates to try")
    for v in values:
        if not v > 0:
            _fail(f"{key}.values", f"learning rate {v!r} is not > 0")
    if len(set(values)) != len(values):
        _fail(f"{key}.values", f"{values} lists a learning rate twice")
    if not seeds:
        _fail(f"{key}.seeds", "empty: list at least one seed")
    t = sc["training"]
    total = sc["data"]["n_train"] // t["batch_size"] * t["epochs"]
    steps = sw.get("steps", total)
    if not 1 <= steps <= total:
        _fail(
            f"{key}.steps", f"{steps} is outside 1..{total} (the training runs' steps)"
        )
    known = sorted(set(FAMILIES.values()))
    for fam, entry in fams.items():
        if fam not in known:
            _fail(f"{key}.families", f"unknown family {fam!r}; expected one of {known}")
        if FAMILIES.get(entry["strategy"]) != fam:
            _fail(
                f"{key}.families.{fam}",
                f"strategy {entry['strategy']} is not of family {fam}",
            )
        _check_config(f"{key}.families.{fam}", *config_of(entry))
    needed = sorted({FAMILIES[r["strategy"]] for r in runs.values()} - set(fams))
    if needed:
        _fail(
            f"{key}.families",
            f"no configuration for family {needed[0]!r}, which has runs "
            "in this scale (each run takes its family's chosen learning rate)",
        )
    out = {}
    for fam, entry in sorted(fams.items()):
        strategy, p, n, k = config_of(entry)
        for lr in values:
            for seed in seeds:
                name = f"{fam}-lr{float(lr)!r}-s{seed}"
                out[name] = dict(
                    run=name,
                    family=fam,
                    lr=float(lr),
                    strategy=strategy,
                    p=p,
                    n=n,
                    k=k,
                    seed=seed,
                    steps=steps,
                    init=(t.get("pp_init") or "") if strategy == "pp" else "",
                )
    return out


LR_SWEEP = lr_sweep_plan(SC, SCALE, RUNS)
LR_WIDTH_SCALING = (SC.get("lr_sweep") or {}).get("width_scaling", "none")
LR_SWEEP_SCRIPT = Path(workflow.basedir) / "workflow" / "scripts" / "lr_sweep.py"


def lr_sweep_input(wildcards):
    """The sweep's table when the sweep is on: every training run reads its --lr from it."""
    return [derived_table("lr_sweep")] if LR_SWEEP else []
