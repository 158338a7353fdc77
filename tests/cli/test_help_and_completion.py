"""What people expect of a command: `--version`, `--help` with examples that work, tab completion."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aoc_cli.main import COMPLETION_SHELLS, EXAMPLES, build_parser

AOC = Path(sys.executable).with_name("aoc")
COMMANDS = [name for name in EXAMPLES if name != "aoc"]


def aoc(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AOC), *arguments], capture_output=True, text=True, timeout=60)


def command_words(example: str) -> list[str]:
    """An example line as argv for `aoc`: comments, VAR=value prefixes and `eval "$(…)"` removed."""
    line = example.split("  #", 1)[0].strip()
    if line.startswith('eval "$('):
        line = line.removeprefix('eval "$(').removesuffix(')"')
    words = shlex.split(line.split(">", 1)[0])
    while words and "=" in words[0] and words[0] != "aoc":
        words.pop(0)
    assert words[0] == "aoc", example
    return words[1:]


def test_version_names_the_installed_package() -> None:
    result = aoc("--version")

    assert result.returncode == 0
    assert result.stdout.startswith("aoc ") and "unknown" not in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_shows_examples(command: str) -> None:
    result = aoc(command, "--help")

    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout
    for example in EXAMPLES[command]:
        assert example in result.stdout


@pytest.mark.parametrize(
    "example", [line for lines in EXAMPLES.values() for line in lines], ids=lambda line: line[:50]
)
def test_every_help_example_parses(example: str) -> None:
    build_parser().parse_args(command_words(example))


def test_every_subcommand_has_examples() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices

    assert set(subcommands) == set(COMMANDS)


BASH = shutil.which("bash")


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("aoc de", "demo"),
        ("aoc run ", "siem_forwarder"),
        ("aoc demo --exit", "--exit-when-ingested"),
    ],
)
def test_bash_completion_completes_commands_choices_and_options(typed: str, expected: str) -> None:
    script = aoc("completion", "bash").stdout
    words = typed.split(" ")
    probe = (
        f"{script}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(typed)}; COMP_POINT={len(typed)}\n"
        "_shtab_aoc; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    result = subprocess.run([str(BASH), "-c", probe], capture_output=True, text=True, timeout=30)

    assert expected in result.stdout.split(), result.stdout + result.stderr


@pytest.mark.parametrize("shell", COMPLETION_SHELLS)
def test_completion_scripts_are_generated_for_each_shell(shell: str) -> None:
    result = aoc("completion", shell)

    assert result.returncode == 0
    assert "renormalize" in result.stdout and "--exit-when-ingested" in result.stdout
