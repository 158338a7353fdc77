"""The import boundaries in pyproject.toml (import-linter contracts) hold for the code as it is, and
they catch a service importing another, aoc_common importing a service, or the CLI reaching past a
service's public `service` module.

The check runs on a copy of the packages laid out as they install (setup.py's `package_roots()`),
first as they are, then with one offending import added, so that the test proves it can fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lay_out_packages(root: Path) -> None:
    """Each package's sources under its import name in `root`, as the wheel installs them."""
    spec = importlib.util.spec_from_file_location("aoc_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)
    for name, source in setup_module.package_roots().items():
        shutil.copytree(
            REPO / source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.json")
        )


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_code_keeps_every_import_contract(tmp_path: Path) -> None:
    lay_out_packages(tmp_path)

    result = lint_imports(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "offending_import", "broken_contract"),
    [
        ("aoc_store/core.py", "import aoc_alerter.core", "Services import no other service"),
        (
            "aoc_common/topics.py",
            "import aoc_normalizer.core",
            "aoc_common imports no service and not the CLI",
        ),
        ("aoc_alerter/core.py", "import aoc_cli.main", "Services do not import the CLI"),
        (
            "aoc_cli/demo.py",
            "import aoc_store.runtime",
            "The CLI reaches a service only through its public service module",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, offending_import: str, broken_contract: str
) -> None:
    lay_out_packages(tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{offending_import}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    assert f"{broken_contract} BROKEN" in result.stdout, result.stdout
    assert offending_import.removeprefix("import ") in result.stdout  # the report names the import
