"""Reads deploy/Dockerfile as data (stages, COPY sources, RUN commands) and rebuilds its build context.

No Docker engine runs here or in CI, so the tests do what the image build would do with the same
inputs: copy what the COPY lines send (minus what .dockerignore leaves out) and run the `pip` steps.
"""

from __future__ import annotations

import fnmatch
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


@dataclass
class Stage:
    """One FROM … section: its name and its instructions, each as (keyword, arguments)."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def copies_from_context(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY that reads the build context (not another stage)."""
        copies = []
        for keyword, arguments in self.instructions:
            words = shlex.split(arguments)
            if keyword != "COPY" or any(word.startswith("--from=") for word in words):
                continue
            paths = [word for word in words if not word.startswith("--")]
            copies.append((paths[:-1], paths[-1]))
        return copies

    def pip_commands(self) -> list[list[str]]:
        """Every `pip …` command of the RUN lines, split into words (shell `&&` chains split too)."""
        commands = []
        for keyword, arguments in self.instructions:
            if keyword != "RUN":
                continue
            for command in arguments.split("&&"):
                words = shlex.split(command)
                if words and words[0] == "pip":
                    commands.append(words)
        return commands


def read_stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages in order, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, arguments = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, arguments.strip()))
    return stages


def ignored_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    """.dockerignore patterns (exceptions, `!…`, only re-include files at the top, which COPY names)."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith(("#", "!"))]


def is_ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `relative` (a path below the context root) out of the context."""
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if pattern.startswith("**/"):
            # `**/x` matches x at any depth, and everything below it.
            if any(
                fnmatch.fnmatch("/".join(parts[i:j]), bare)
                for i in range(len(parts))
                for j in range(i + 1, len(parts) + 1)
            ):
                return True
        elif any(fnmatch.fnmatch("/".join(parts[:j]), pattern) for j in range(1, len(parts) + 1)):
            return True
    return False


def build_context(stage: Stage, target: Path) -> list[str]:
    """Copy into `target` what the stage's COPY lines would send; the sources as the Dockerfile names them."""
    patterns = ignored_patterns()
    sources: list[str] = []
    for paths, _destination in stage.copies_from_context():
        for source in paths:
            sources.append(source)
            origin = REPO_ROOT / source
            if origin.is_dir():
                for file in sorted(origin.rglob("*")):
                    relative = file.relative_to(REPO_ROOT).as_posix()
                    if file.is_file() and not is_ignored(relative, patterns):
                        (target / relative).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, target / relative)
            elif origin.is_file():
                shutil.copy2(origin, target / source)
    return sources
