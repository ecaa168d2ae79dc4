"""One convention across the console scripts: --version, defaults in --help, one name per
concept (--batch-size, --ranks; the older spellings still accepted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from phantom_parallel import __version__

SCRIPTS = {  # console script -> module (pyproject.toml [project.scripts])
    "phantom-data": "phantom_parallel.data",
    "phantom-train": "phantom_parallel.train",
    "phantom-bench": "phantom_parallel.bench",
    "phantom-costs": "phantom_parallel.costs_cli",
    "phantom-emulate": "phantom_parallel.emulate",
    "phantom-infer": "phantom_parallel.infer",
    "phantom-energy": "phantom_parallel.energy.cli",
}


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c`` calls the module's ``main`` exactly as the console script does."""
    code = f"import sys; from {module} import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_console_script_is_listed() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = {k: v.split(":")[0] for k, v in pyproject["project"]["scripts"].items()}
    assert declared == SCRIPTS


@pytest.mark.parametrize(("prog", "module"), sorted(SCRIPTS.items()))
def test_version(prog: str, module: str) -> None:
    res = _run(module, "--version")
    assert res.returncode == 0 and res.stdout.strip() == f"{prog} {__version__}"


@pytest.mark.parametrize("module", ["phantom_parallel.train", "phantom_parallel.bench",
                                    "phantom_parallel.costs_cli", "phantom_parallel.emulate",
                                    "phantom_parallel.infer"])
def test_batch_is_batch_size_with_its_default_shown(module: str) -> None:
    text = _run(module, "--help").stdout
    assert "--batch-size" in text and "(default:" in text
