"""Every command, run with a setting an operator got wrong, ends in one line that names the setting.

A data folder (or another path option) that is a file, one this user may not write, a Kafka or MongoDB
that cannot be reached: each command exits non-zero with one line naming the setting (or option) and
the cause, and never a traceback (`--debug` shows it). The commands run as real processes, one per
test, so that xdist spreads them over its workers (a module fixture running every case at once ran
them all again in each worker that got one of these tests); the permission cases run without the
capabilities that let root write anywhere when the tests run as root (CI does): `setpriv` drops them
from the process's bounding set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aoc_common.operator_errors import one_line
from aoc_common.settings import Settings

AOC = Path(sys.executable).with_name("aoc")
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
SERVICES = ("collector", "normalizer", "store", "api", "alerter", "siem_forwarder")
SETPRIV = shutil.which("setpriv")
WITHOUT_ROOT_OVERRIDES = ["--bounding-set=-dac_override,-dac_read_search,-fowner"]
ENRICHMENT = {
    "ENRICHMENT_ENABLED": "true",
    "TENANT_ID": "t",
    "CLIENT_ID": "c",
    "CLIENT_SECRET": "s",
}
SIEM = {"SIEM_ENABLED": "true", "SIEM_WEBHOOK_URL": "http://127.0.0.1:9/siem"}
REPLAY = ["replay", "--group", "aoc-store", "--topic", "aoc.events", "--offset", "0"]
RENORMALIZE = ["renormalize", "--since", "2026-11-20T00:00:00Z"]
SAMPLES = Path(__file__).resolve().parents[2] / "services" / "collector" / "sample_data"


@dataclass(frozen=True)
class Case:
    """One command with one wrong setting, and the words its one line must hold."""

    argv: tuple[str, ...]
    environment: dict[str, str]
    expected: tuple[str, ...]
    unprivileged: bool = False
    stdin: str = ""

    def key(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in self.environment.items())
        return f"{settings} aoc {' '.join(self.argv)}".strip()


@dataclass
class Outcome:
    returncode: int
    output: str
    lines: list[str] = field(default_factory=list)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_cases(paths: dict[str, Path]) -> dict[str, Case]:
    a_file, locked_new, locked_existing = paths["file"], paths["new"], paths["existing"]
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port()}"}
    # Nothing listens there: the first connection attempt is refused at once, and the 500 ms the
    # URI gives server selection (it wins over AOC's 3 s) only bounds how long the driver retries.
    mongo = {
        "MONGO_URI": f"mongodb://aoc:hunter2@127.0.0.1:{closed_port()}/?serverSelectionTimeoutMS=500"
    }
    cases: dict[str, Case] = {}

    def add(name: str, argv: list[str], env: dict[str, str], *expected: str, **kw: object) -> None:
        cases[name] = Case(tuple(argv), env, expected, **kw)  # type: ignore[arg-type]

    # A data folder that is a file.
    add("file-demo", ["demo", "--data-dir", str(a_file)], {}, f"--data-dir={a_file}", "is a file")
    for service in SERVICES:
        add(
            f"file-run-{service}",
            ["run", service],
            {"DATA_DIR": str(a_file)} | SIEM,
            f"DATA_DIR={a_file}",
            "is a file",
        )
    add(
        "file-stand-in",
        ["stand-in", "--port", "0", "--tls-dir", str(a_file)],
        {},
        f"--tls-dir={a_file}",
        "is a file",
    )
    for name, argv, extra in [
        ("topics", ["topics"], {}),
        ("ingest", ["ingest", str(SAMPLES)], {}),
        ("replay", REPLAY, {}),
        ("renormalize", RENORMALIZE, ENRICHMENT),
        ("mcp", ["mcp"], {}),
    ]:
        add(
            f"file-{name}",
            argv,
            {"DATA_DIR": str(a_file)} | extra,
            f"DATA_DIR={a_file}",
            "is a file",
        )
    # A data folder this user may not write: one it would have to create, one that exists.
    add(
        "denied-demo",
        ["demo", "--data-dir", str(locked_existing)],
        {},
        f"--data-dir={locked_existing}",
        "permission denied",
        unprivileged=True,
    )
    add(
        "denied-run-store",
        ["run", "store"],
        {"DATA_DIR": str(locked_new)},
        f"DATA_DIR={locked_new}",
        "permission denied",
        unprivileged=True,
    )
    add(
        "denied-replay",
        REPLAY,
        {"DATA_DIR": str(locked_existing)},
        f"DATA_DIR={locked_existing}",
        "permission denied",
        unprivileged=True,
    )
    # Engines that cannot be reached: the Faust normalizer, a plain consumer, a one-shot command.
    for name, argv in [
        ("run-normalizer", ["run", "normalizer"]),
        ("run-store", ["run", "store"]),
        ("topics", ["topics"]),
    ]:
        add(
            f"kafka-{name}",
            argv,
            kafka | {"DATA_DIR": str(paths["ok"])},
            f"KAFKA_BOOTSTRAP_SERVERS={kafka['KAFKA_BOOTSTRAP_SERVERS']}",
        )
    for name, argv in [("run-api", ["run", "api"]), ("mcp", ["mcp"])]:
        add(
            f"mongo-{name}",
            argv,
            mongo | {"DATA_DIR": str(paths["ok"])},
            "MONGO_URI",
            "Connection refused",
        )
    return cases


def run_case(case: Case, workdir: Path) -> Outcome:
    environment = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    environment |= case.environment
    prefix: list[str] = []
    if case.unprivileged and os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("running as root without setpriv: every folder is writable")
        prefix = [SETPRIV, *WITHOUT_ROOT_OVERRIDES]
    result = subprocess.run(
        [*prefix, str(AOC), *case.argv],
        cwd=workdir,
        env=environment,
        input=case.stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = result.stdout + result.stderr
    return Outcome(result.returncode, output, output.splitlines())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("operator-errors")
    root.chmod(0o755)
    (root / "a-file").write_text("not a folder\n")
    locked = root / "locked"
    (locked / "existing").mkdir(parents=True)
    (root / "ok").mkdir()
    (root / "ok").chmod(0o777)
    for folder in (locked / "existing", locked):
        folder.chmod(0o555)
    return {
        "root": root,
        "file": root / "a-file",
        "new": locked / "new",
        "existing": locked / "existing",
        "ok": root / "ok",
    }


CASE_NAMES = list(build_cases({k: Path(k) for k in ("file", "new", "existing", "ok")}))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_a_wrong_setting_ends_in_one_line_naming_it(name: str, workdir: dict[str, Path]) -> None:
    case = build_cases(workdir)[name]

    outcome = run_case(case, workdir["root"])

    context = f"{case.key()}\n{outcome.output}"

    assert outcome.returncode not in (0, None), context
    assert "Traceback" not in outcome.output, context
    naming = [line for line in outcome.lines if all(word in line for word in case.expected)]
    assert len(naming) == 1, context
    assert "hunter2" not in outcome.output  # MONGO_URI is named, never shown


def test_debug_shows_the_traceback(workdir: dict[str, Path]) -> None:
    case = Case(("--debug", "demo", "--data-dir", str(workdir["file"])), {}, ())

    outcome = run_case(case, workdir["root"])

    assert outcome.returncode != 0
    assert "Traceback" in outcome.output


@pytest.mark.parametrize(
    ("text", "shortened"),
    [
        ("short reason", "short reason"),
        ("one two three four five six", "one two three four…"),
        ("x" * 30, "x" * 19 + "…"),
        ("line one\nline two", "line one line two"),
        ("bad: first; second; third", "bad: first…"),
    ],
)
def test_one_line_shortens_at_a_word_boundary(text: str, shortened: str) -> None:
    assert one_line(text, limit=20) == shortened
