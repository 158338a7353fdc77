"""Which folders become which importable packages, found on disk rather than listed by hand.

AOC's import names (`aoc_common`, `aoc_collector`, …) differ from its folders (`libs/aoc_common`,
`services/collector`, …), which `[tool.setuptools.packages.find]` cannot express. So this file finds
them: every `libs/<name>/` with an `__init__.py` is `<name>`, every `services/<name>/` is `aoc_<name>`,
`cli/` is `aoc_cli`, `ui/` is `aoc_ui`; every folder below a package root
is a subpackage, and every file in those folders that is not Python source ships as package data. A new
service, subpackage, UI module or sample file is in the wheel without anyone remembering to list it
(`tests/packaging/test_wheel.py` checks the built wheel against the checkout). Metadata and
dependencies stay in pyproject.toml.

`mappings.yml` lives at the top of the repository, where operators look for it; the wheel carries a
copy as `aoc_common/mappings.yml`, the default `MAPPINGS_PATH` of an installed AOC.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
FIXED_ROOTS = {"aoc_cli": "cli", "aoc_ui": "ui"}
SKIPPED_FOLDERS = {"__pycache__"}
SOURCE_SUFFIXES = {".py", ".pyc", ".pyo"}
PACKAGED_MAPPINGS = Path("aoc_common") / "mappings.yml"


def package_roots() -> dict[str, str]:
    """Import name → folder (relative to this file) of every top-level package.

    Also read by tests (tests/test_import_boundaries.py lays the packages out by it).
    """
    roots = dict(FIXED_ROOTS)
    for init in sorted(HERE.glob("libs/*/__init__.py")):
        roots[init.parent.name] = init.parent.relative_to(HERE).as_posix()
    for init in sorted(HERE.glob("services/*/__init__.py")):
        roots[f"aoc_{init.parent.name}"] = init.parent.relative_to(HERE).as_posix()
    return roots


def _is_shipped(path: Path) -> bool:
    return not any(part in SKIPPED_FOLDERS or part.startswith(".") for part in path.parts)


def discover(roots: dict[str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """Every package and subpackage under the roots, and the data files of each."""
    packages: list[str] = []
    package_data: dict[str, list[str]] = {}
    for name, folder in roots.items():
        root = HERE / folder
        for directory in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
            relative = directory.relative_to(root)
            if not _is_shipped(relative):
                continue
            package = ".".join([name, *relative.parts])
            packages.append(package)
            data = sorted(
                entry.name
                for entry in directory.iterdir()
                if entry.is_file()
                and entry.suffix not in SOURCE_SUFFIXES
                and not entry.name.startswith(".")
            )
            if data:
                package_data[package] = data
    return packages, package_data


class BuildWithMappings(build_py):
    """Also copies the repository's `mappings.yml` into the wheel (an editable install reads it in place)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / PACKAGED_MAPPINGS
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / "mappings.yml", target)


if __name__ == "__main__":  # as setuptools runs it; importing this file only defines the functions
    ROOTS = package_roots()
    PACKAGES, PACKAGE_DATA = discover(ROOTS)
    setup(
        package_dir=ROOTS,
        packages=PACKAGES,
        package_data=PACKAGE_DATA,
        cmdclass={"build_py": BuildWithMappings},
    )
