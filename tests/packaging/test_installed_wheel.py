"""AOC as users install it, not as the tests import it: the wheel that deploy/Dockerfile builds.

The two `pip` steps are read from the Dockerfile and run on a copy of exactly what its COPY lines send
(there is no Docker engine here or in CI, so `docker build` itself is not run); the wheel goes into a
fresh virtual environment, and `aoc demo` and `aoc run api` run from there, outside the checkout, with
no AOC variable set. A file missing from the wheel, a subpackage left out, a COPY line forgotten or a
default path that only exists in a checkout fails here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aoc_common.settings import Settings
from tests.packaging.dockerfile import REPO_ROOT, build_context, read_stages

pytestmark = pytest.mark.timeout(600)

STAGES = read_stages()
BUILD_STAGE, RUNTIME_STAGE = STAGES[0], STAGES[-1]
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
# This machine's pip configuration names an extra index folder that is sometimes absent; pip says so.
MACHINE_PIP_NOTICE = re.compile(r"^WARNING: Location 'file://.*' is ignored", re.IGNORECASE)


@dataclass(frozen=True)
class InstalledAoc:
    context: Path
    wheel: Path
    build_output: str
    venv: Path

    @property
    def aoc(self) -> Path:
        return self.venv / "bin" / "aoc"


def clean_environment() -> dict[str, str]:
    """The caller's environment without AOC settings, PYTHONPATH or bytecode switches."""
    dropped = SETTINGS_VARIABLES | {"PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR"}
    return {name: value for name, value in os.environ.items() if name.upper() not in dropped}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledAoc:
    """The Dockerfile's wheel build and install steps, run here on its build context."""
    root = tmp_path_factory.mktemp("installed")
    context, dist, environment = root / "context", root / "dist", root / "venv"
    context.mkdir()
    build_context(BUILD_STAGE, context)

    [build_command] = BUILD_STAGE.pip_commands()
    build_words = [str(dist) if word == "/dist" else word for word in build_command[1:]]
    built = subprocess.run(
        [sys.executable, "-m", "pip", *build_words, "--verbose"],
        cwd=context,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = dist.glob("aoc-*.whl")

    [install_command] = RUNTIME_STAGE.pip_commands()
    install_words = [str(wheel) if word == "/dist/*.whl" else word for word in install_command[1:]]
    venv.create(environment, with_pip=False)
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(environment / "bin" / "python"),
            *install_words,
        ],
        cwd=root,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return InstalledAoc(context, wheel, built.stdout + built.stderr, environment)


@pytest.fixture(scope="module")
def demo_run(installed: InstalledAoc, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """`aoc demo --exit-when-ingested` from the installed wheel: its output and its data folder."""
    workdir = tmp_path_factory.mktemp("demo")
    data_dir = workdir / "data"
    result = subprocess.run(
        [
            str(installed.aoc),
            "demo",
            "--exit-when-ingested",
            "--port",
            str(free_port()),
            "--data-dir",
            str(data_dir),
        ],
        cwd=workdir,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr, data_dir


def test_the_dockerfile_builds_the_wheel_and_the_image_installs_it() -> None:
    [build_command] = BUILD_STAGE.pip_commands()
    [install_command] = RUNTIME_STAGE.pip_commands()

    assert build_command[:2] == ["pip", "wheel"] and "--no-deps" in build_command
    assert build_command[-1] == "."
    assert install_command[:2] == ["pip", "install"] and install_command[-1] == "/dist/*.whl"
    assert ("wheel", "/dist", "/dist") in [
        (words[0].removeprefix("--from="), words[1], words[2])
        for keyword, arguments in RUNTIME_STAGE.instructions
        if keyword == "COPY" and (words := arguments.split())[0].startswith("--from=")
    ]
    assert BUILD_STAGE.name == "wheel"
    every_word = [word for stage in STAGES for command in stage.pip_commands() for word in command]
    assert not any("[dev]" in word for word in every_word)


def test_every_path_the_dockerfile_copies_exists() -> None:
    for stage in STAGES:
        for sources, _destination in stage.copies_from_context():
            for source in sources:
                assert (REPO_ROOT / source).exists(), (
                    f"{source} (COPY in {stage.name or 'runtime'})"
                )


def test_the_build_prints_no_warning(installed: InstalledAoc) -> None:
    warnings = [
        line
        for line in installed.build_output.splitlines()
        if re.search(r"warn|deprecat|would be ignored|!!", line, re.IGNORECASE)
        and not MACHINE_PIP_NOTICE.match(line.strip())
    ]
    assert warnings == [], "\n".join(warnings)


def test_the_wheel_holds_every_file_of_every_package(installed: InstalledAoc) -> None:
    """Python sources and data alike: samples, schemas, the UI and its vendored libraries, rules."""
    folders = {"cli": "aoc_cli", "ui": "aoc_ui"}
    folders |= {f"libs/{p.name}": p.name for p in (installed.context / "libs").iterdir()}
    folders |= {
        f"services/{p.name}": f"aoc_{p.name}" for p in (installed.context / "services").iterdir()
    }
    expected = {
        f"{package}/{file.relative_to(installed.context / folder).as_posix()}"
        for folder, package in folders.items()
        for file in (installed.context / folder).rglob("*")
        if file.is_file()
    }
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = set(wheel.namelist())

    assert expected - shipped == set()
    assert "aoc_common/mappings.yml" in shipped
    assert {"aoc_ui/index.html", "aoc_common/schemas/canonical_event.v3.json"} <= shipped
    assert any(name.startswith("aoc_collector/sample_data/") for name in shipped)


def test_the_installed_aoc_runs_from_the_environment_not_the_checkout(
    installed: InstalledAoc, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import aoc_api, aoc_common.settings as s; print(aoc_api.__file__); "
            "print(s.Settings().mappings_path)",
        ],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    module, mappings = result.stdout.split()

    assert Path(module).is_relative_to(installed.venv)
    assert Path(mappings).is_relative_to(installed.venv) and Path(mappings).is_file()
    version = subprocess.run(
        [str(installed.aoc), "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and re.fullmatch(r"aoc \S+\n", version.stdout)


def test_the_installed_demo_ingests_the_bundled_samples(demo_run: tuple[str, Path]) -> None:
    output, _data_dir = demo_run

    assert "Traceback" not in output
    published = re.search(r"published (\d+) raw records from (\S+)", output)
    stored = re.search(r"(\d+) events in the store", output)
    assert published and stored, output
    assert "site-packages" in published.group(2)
    assert int(stored.group(1)) > 0


@pytest.fixture
def installed_api(
    installed: InstalledAoc, demo_run: tuple[str, Path], tmp_path: Path
) -> Iterator[str]:
    """`aoc run api` from the installed wheel over the demo's store; its base URL while it serves."""
    port = free_port()
    environment = clean_environment() | {"DATA_DIR": str(demo_run[1]), "API_PORT": str(port)}
    process = subprocess.Popen(
        [str(installed.aoc), "run", "api"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output
        assert "Traceback" not in output, output


def test_the_installed_api_answers_health_and_serves_the_ui(
    installed_api: str, installed: InstalledAoc
) -> None:
    health = httpx.get(f"{installed_api}/health", timeout=10)
    page = httpx.get(f"{installed_api}/", timeout=10)
    events = httpx.get(f"{installed_api}/api/events", params={"page_size": 5}, timeout=10)
    docs = httpx.get(f"{installed_api}/docs", timeout=10)

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert page.status_code == 200 and "Admin Operations Center" in page.text
    assert events.status_code == 200 and events.json()["items"]
    assert docs.status_code == 200
    # Every file of the UI (its ES modules and vendored libraries too) is served from the wheel.
    with zipfile.ZipFile(installed.wheel) as wheel:
        ui_files = [
            name.removeprefix("aoc_ui/")
            for name in wheel.namelist()
            if name.startswith("aoc_ui/") and not name.endswith(".py")
        ]
    assert any(name.endswith(".js") for name in ui_files)
    for name in ui_files:
        assert httpx.get(f"{installed_api}/{name}", timeout=10).status_code == 200, name
