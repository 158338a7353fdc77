"""Every command in the README's ```sh blocks, run as written.

Each block runs in bash in a scratch folder holding a copy of `.env.example`, with the checkout's `.venv`
first on PATH (as after `source .venv/bin/activate`) and `DATA_DIR` pointing at a store filled by
`aoc demo`, which serves as the README's "http://127.0.0.1:8000". What a test has to change is only
where things listen: `127.0.0.1:8000` / `localhost:8000` / `127.0.0.1:8001` become free ports, and
`<id>` a real alert id. `curl` fails on an HTTP error. `aoc run <service>` starts in the background
until its block ends. The few commands that cannot run here say why in NOT_RUN, and a command the
README shows refusing says what it answers in REFUSALS: a new README command that fits neither runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aoc_cli.main import build_parser
from aoc_common.settings import Settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
VENV_BIN = Path(sys.executable).parent
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}

# Commands not run here, and why. Each is covered elsewhere.
NOT_RUN = {
    "make demo": "runs `aoc demo`, which serves this test's API and is run by tests/test_demo_command.py",
    "make test": "CI's own command (.ci/run runs exactly it)",
    "docker compose": "no Docker engine here or in CI: tests/test_deployment_files.py checks the "
    "compose file, tests/packaging runs the image's install step",
}
# Commands the README shows before their prerequisites: what they answer here, as documented.
REFUSALS = {
    "aoc renormalize": (2, "renormalize needs ENRICHMENT_ENABLED=true"),
}
BASH = shutil.which("bash") or "/bin/bash"
MAKE = shutil.which("make") or "make"
CURL = 'curl() { command curl --silent --show-error --fail-with-body --max-time 60 "$@"; }\n'


@dataclass
class Block:
    heading: str
    commands: list[str]


@dataclass
class Sandbox:
    folder: Path
    data_dir: Path
    demo_port: int
    environment: dict[str, str]
    background: list[subprocess.Popen[str]] = field(default_factory=list)


def readme_blocks() -> list[Block]:
    """The ```sh blocks, each as its commands (continuation lines joined, comments dropped)."""
    blocks: list[Block] = []
    heading = ""
    inside = False
    for line in README.splitlines():
        if line.startswith("#") and not inside:
            heading = line.lstrip("#").strip()
        elif line.strip() == "```sh":
            inside = True
            blocks.append(Block(heading, []))
        elif line.strip() == "```" and inside:
            inside = False
        elif inside:
            command = _without_comment(line).strip()
            if command:
                blocks[-1].commands.append(command)
    return blocks


def _without_comment(line: str) -> str:
    """The line up to a `#` that starts a comment (not one inside quotes)."""
    quote = ""
    for position, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position]
    return line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def not_run_reason(command: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if command.startswith(prefix)), None)


def served_service(command: str) -> str | None:
    """`aoc run <service>` (after any VAR=value) is a server: the service's name."""
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)
    return words[2] if words[:2] == ["aoc", "run"] and len(words) > 2 else None


def wait_until_listening(port: int, process: subprocess.Popen[str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout_s} s")


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            process.kill()
    return process.communicate()[0]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A scratch folder, and `aoc demo` serving its store, as after the Quick start."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copy(REPO / ".env.example", folder / ".env.example")
    data_dir = folder / "data"
    environment = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    environment |= {"PATH": f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}"}
    environment |= {"DATA_DIR": str(data_dir), "VIRTUAL_ENV": str(VENV_BIN.parent)}
    port = free_port()
    demo = subprocess.Popen(
        [str(VENV_BIN / "aoc"), "demo", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if "AOC demo: serving" in line:
            break
    else:
        raise AssertionError(stop(demo))
    yield Sandbox(folder, data_dir, port, environment)
    stop(demo)


def bash(command: str, sandbox: Sandbox, environment: dict[str, str], **kw: object) -> object:
    return subprocess.run(
        [BASH, "-c", CURL + command],
        cwd=sandbox.folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        **kw,
    )


def an_alert_id(base: str) -> str:
    page = httpx.get(f"{base}/api/alerts", timeout=30).json()
    assert page["items"], "the demo raised no alert"
    return str(page["items"][0]["id"])


BLOCKS = readme_blocks()


def test_the_readme_has_command_blocks_and_every_aoc_command_parses() -> None:
    assert any("make demo" in b.commands for b in BLOCKS)
    assert any("make test" in b.commands for b in BLOCKS)
    # Code spans that are commands (not output like `aoc demo: …`, nor placeholders like <service>).
    inline = set(re.findall(r"`(aoc [a-z-]+(?: [^`<…:\n]*)?)`", README))
    for block in BLOCKS:
        inline |= {c for c in block.commands if c.startswith("aoc ")}
    parser = build_parser()
    names = next(a for a in parser._actions if a.dest == "command").choices
    for command in sorted(inline):
        words = shlex.split(command)[1:]
        if len(words) == 1 and not words[0].startswith("-"):
            assert words[0] in names, command  # a command named in prose
            continue
        try:
            build_parser().parse_args(words)
        except SystemExit as exit_:  # --help and --version print and exit 0
            assert exit_.code == 0, command


@pytest.mark.parametrize(
    "block", BLOCKS, ids=[f"{i}-{b.heading[:30]}" for i, b in enumerate(BLOCKS)]
)
def test_each_readme_command_works_as_written(block: Block, sandbox: Sandbox) -> None:
    starts_api = any(served_service(c) == "api" for c in block.commands)
    api_port = free_port() if starts_api else sandbox.demo_port
    collector_port = free_port()
    environment = sandbox.environment | {
        "API_PORT": str(api_port),
        "COLLECTOR_CONTROL_PORT": str(collector_port),
    }
    base = f"http://127.0.0.1:{api_port}"
    background: list[subprocess.Popen[str]] = []
    try:
        for written in block.commands:
            if not_run_reason(written) is not None:
                if written.startswith("make "):
                    target = written.split()[1]
                    dry = subprocess.run(
                        [MAKE, "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60
                    )
                    assert dry.returncode == 0, f"{written}: {dry.stderr}"
                continue
            command = (
                written.replace("127.0.0.1:8000", f"127.0.0.1:{api_port}")
                .replace("localhost:8000", f"127.0.0.1:{api_port}")
                .replace("127.0.0.1:8001", f"127.0.0.1:{collector_port}")
                .replace("source .venv/bin/activate", f"source {VENV_BIN}/activate")
            )
            if "<id>" in command:
                command = command.replace("<id>", an_alert_id(base))
            service = served_service(command)
            if service is not None:
                process = subprocess.Popen(
                    [BASH, "-c", f"exec env {command}"],
                    cwd=sandbox.folder,
                    env=environment,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                background.append(process)
                port = {"api": api_port, "collector": collector_port}.get(service)
                if port is not None:
                    wait_until_listening(port, process)
                continue
            result = bash(command, sandbox, environment)
            expected = next(
                (answer for prefix, answer in REFUSALS.items() if written.startswith(prefix)),
                (0, ""),
            )
            output = result.stdout + result.stderr  # type: ignore[attr-defined]
            assert result.returncode == expected[0], f"{written}\n{output}"  # type: ignore[attr-defined]
            assert expected[1] in output, f"{written}\n{output}"
            assert "Traceback" not in output, f"{written}\n{output}"
    finally:
        for process in background:
            output = stop(process)
            assert "Traceback" not in output, output
