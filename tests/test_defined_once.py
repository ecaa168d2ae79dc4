"""Each list (strategies, dtypes, power sources) and the layout check are defined once:
in :mod:`phantom_parallel.constants` (power sources in :mod:`phantom_parallel.energy.sources`)
and :mod:`phantom_parallel.layout`. A list typed again anywhere in the sources, notebooks,
workflow, benchmarks or the config schema fails here; so does ``phantom-costs`` importing torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from phantom_parallel import constants
from phantom_parallel.energy.sources import POWER_SOURCES

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [*ROOT.glob("src/phantom_parallel/**/*.py"), *ROOT.glob("notebooks/*.ipynb"),
           *ROOT.glob("notebooks/*.py"), *ROOT.glob("workflow/**/*.py"),
           *ROOT.glob("workflow/**/*.smk"), *ROOT.glob("benchmarks/**/*.py"), ROOT / "Snakefile"]
HOMES = {"src/phantom_parallel/constants.py", "src/phantom_parallel/energy/sources.py"}
ALLOWED = {"src/phantom_parallel/energy/measure.py": "GPU_FORMATS names log formats, not sources"}
# (label, names, how many of them in one literal count as the list typed again)
LISTS = [("strategies", set(constants.STRATEGIES), 3), ("dtypes", set(constants.DTYPES), 2),
         ("power sources", set(POWER_SOURCES) - {"auto", "none"}, 2)]
NAMES_LITERAL = re.compile(r"[(\[{]\s*((?:[\"'][\w.-]+[\"']\s*,\s*)+[\"'][\w.-]+[\"'])\s*,?\s*[)\]}]")
DICT_KEYS = re.compile(r"[\"']([\w.-]+)[\"']\s*:")


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def _text(p: Path) -> str:
    if p.suffix == ".ipynb":
        return "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"])
    return p.read_text(errors="replace")


def _retyped(text: str) -> list[str]:
    """Literals in ``text`` that spell out one of the lists (or a subset of it)."""
    found = []
    for m in NAMES_LITERAL.finditer(text):
        names = set(re.findall(r"[\"']([\w.-]+)[\"']", m.group(1)))
        found += [f"{label}: {m.group(0)}" for label, known, least in LISTS
                  if len(names & known) >= least]
    for m in re.finditer(r"\{[^{}]*\}", text):  # a dict keyed by dtypes (a second bytes table)
        if len(set(DICT_KEYS.findall(m.group(0))) & set(constants.DTYPES)) >= 2:
            found.append(f"dtypes: {m.group(0)[:80]}")
    return found


def test_the_detector_finds_a_retyped_list() -> None:
    assert _retyped('BENCH = ("pp", "tp", "dtensor")')
    assert _retyped('ELEM = {"float32": 4, "bfloat16": 2}')
    assert _retyped("choices=['nvml', 'rapl']")
    assert not _retyped('if strategy in ("tp", "pp"):') and not _retyped('("auto", *SOURCES)')


def test_lists_are_not_typed_again() -> None:
    users = {_rel(p): hits for p in SCANNED
             if _rel(p) not in HOMES and _rel(p) not in ALLOWED and (hits := _retyped(_text(p)))}
    assert not users, f"a list of phantom_parallel.constants typed again: {users}"


def test_labels_are_defined_once() -> None:
    assert set(constants.STRATEGY_LABELS) == set(constants.STRATEGIES)
    users = {_rel(p) for p in SCANNED if '"DTensor TP"' in _text(p)}
    assert users == {"src/phantom_parallel/constants.py"}, users


def test_subsets_are_filters_of_the_one_list() -> None:
    from phantom_parallel import cost_types, models, train
    from phantom_parallel.bench_steps import BENCH_STRATEGIES

    assert models.STRATEGIES is constants.STRATEGIES
    for subset in (cost_types.STRATEGIES, BENCH_STRATEGIES, constants.PARALLEL_STRATEGIES,
                   constants.DENSE_STRATEGIES):
        assert set(subset) < set(constants.STRATEGIES), subset
    assert BENCH_STRATEGIES[0] == "pp"  # the round-robin starts with PP, as documented
    assert tuple(train.DTYPES) == constants.DTYPES
    assert train.POWER_SOURCES is POWER_SOURCES is constants.POWER_SOURCES


def test_schema_enums_come_from_python() -> None:
    """The schema names these definitions without an enum (common.smk fills them) and has no
    other enum of strategies, dtypes or power sources."""
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    for name in constants.SCHEMA_ENUMS:
        assert "enum" not in schema["definitions"][name], f"schema.yaml: definitions.{name}.enum"
    enums: list[list] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "enum" in node:
                enums.append(node["enum"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    for enum in enums:
        for label, known, _ in LISTS:
            assert len(set(enum) & known) < 2, f"schema.yaml types the {label} again: {enum}"
    smk = (ROOT / "workflow/rules/common.smk").read_text()
    assert "SCHEMA_ENUMS" in smk and "validate(config, schema=str(path))" in smk


def test_layout_check_is_defined_once() -> None:
    pattern = re.compile(r"^\s*def validate_layout\(", re.M)
    homes = {_rel(p) for p in SCANNED if pattern.search(_text(p))}
    assert homes == {"src/phantom_parallel/layout.py"}, homes
    divisible = re.compile(r"width n=\S+ is not divisible by")  # the layout's n % p check
    users = {_rel(p) for p in SCANNED if divisible.search(_text(p))}
    assert users == {"src/phantom_parallel/layout.py"}, users


@pytest.mark.parametrize("module", ["phantom_parallel.costs_cli", "phantom_parallel.projection"])
def test_phantom_costs_starts_without_torch(module: str) -> None:
    code = (f"import sys, {module}\nassert 'torch' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('torch'))[:3]")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
