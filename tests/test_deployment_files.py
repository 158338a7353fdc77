"""The deployment files agree with the settings model, and a bad setting stops start-up legibly.

docker-compose.yml, .env.example and deploy/Dockerfile are read as plain files: no Docker engine is
needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from aoc_common.settings import ConfigurationError, Settings, load_settings
from aoc_common.sources import source_option_variables

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

AOC_SERVICES = ("collector", "normalizer", "store", "api", "siem_forwarder", "alerter")
# Every variable AOC reads: the settings, and each source's own (e.g. SIGNINS_EVENT_TYPES).
SETTINGS_VARIABLES = frozenset(name.upper() for name in Settings.model_fields) | (
    source_option_variables()
)


def compose_services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    services: dict[str, dict[str, Any]] = document["services"]
    return services


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment:`, which compose allows as a mapping or as a list of NAME=value."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (entry.split("=", 1) for entry in environment)
        return {pair[0]: pair[1] if len(pair) > 1 else None for pair in pairs}
    return {name: None if value is None else str(value) for name, value in environment.items()}


def env_example_values() -> dict[str, str | None]:
    return dotenv_values(ENV_EXAMPLE)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AOC variable from the caller's shell, and no developer `.env` in the working directory."""
    for name in list(os.environ):
        if name.upper() in SETTINGS_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# --- docker-compose.yml ---


def test_kafka_is_the_official_image_pinned_and_running_kraft_without_zookeeper() -> None:
    kafka = compose_services()["kafka"]
    environment = environment_of(kafka)

    assert re.fullmatch(r"apache/kafka:[34]\.\d+\.\d+", kafka["image"])
    assert set((environment["KAFKA_PROCESS_ROLES"] or "").split(",")) == {"broker", "controller"}
    assert environment["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert environment["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert "kafka:9092" in (environment["KAFKA_ADVERTISED_LISTENERS"] or "")
    assert not any("ZOOKEEPER" in name for name in environment)
    assert kafka["healthcheck"]["test"]


def test_kafka_container_is_configured_only_through_its_own_variables() -> None:
    environment = environment_of(compose_services()["kafka"])

    assert {name for name in environment if not name.startswith("KAFKA_")} <= {"CLUSTER_ID"}


def test_mongo_is_version_7_with_a_healthcheck_and_a_named_volume() -> None:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    mongo = document["services"]["mongo"]

    assert mongo["image"] == "mongo:7"
    assert mongo["healthcheck"]["test"]
    volume_names = {entry.split(":", 1)[0] for entry in mongo["volumes"]}
    assert volume_names & set(document["volumes"])


@pytest.mark.parametrize("name", AOC_SERVICES)
def test_each_aoc_service_runs_from_the_one_image_built_from_deploy_dockerfile(name: str) -> None:
    service = compose_services()[name]

    assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert service["command"] == ["run", name]
    # Every AOC service, the live collector included, is long-running and restarts.
    assert service["restart"] == "unless-stopped"
    assert "profiles" not in service
    env_files = service["env_file"]
    assert any(entry == ".env" or entry.get("path") == ".env" for entry in env_files)


@pytest.mark.parametrize("name", AOC_SERVICES)
def test_each_aoc_service_points_at_the_compose_kafka_and_mongo(name: str) -> None:
    environment = environment_of(compose_services()[name])

    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert environment["MONGO_URI"] == "mongodb://mongo:27017"
    assert environment["MONGO_DB"] == "aoc"


@pytest.mark.parametrize("name", [*AOC_SERVICES, "topics"])
def test_aoc_containers_set_only_variables_the_settings_model_reads(name: str) -> None:
    environment = environment_of(compose_services()[name])

    assert set(environment) - SETTINGS_VARIABLES == set()


@pytest.mark.parametrize("name", AOC_SERVICES)
def test_each_aoc_service_serves_prometheus_metrics_on_the_compose_network(name: str) -> None:
    environment = environment_of(compose_services()[name])

    assert environment["METRICS_HOST"] == "0.0.0.0"
    assert environment["METRICS_PORT"] == "9464"


def test_topics_are_created_once_before_any_consumer_starts() -> None:
    services = compose_services()

    assert services["topics"]["command"] == ["topics"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in AOC_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["topics"]["condition"] == "service_completed_successfully"
        assert depends_on["kafka"]["condition"] == "service_healthy"
    assert services["store"]["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert services["alerter"]["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert services["collector"]["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_the_api_reaches_the_collector_control_endpoint_on_the_compose_network() -> None:
    services = compose_services()

    assert environment_of(services["api"])["COLLECTOR_URL"] == "http://collector:8001"
    collector = environment_of(services["collector"])
    assert collector["COLLECTOR_CONTROL_HOST"] == "0.0.0.0"
    assert collector["COLLECTOR_CONTROL_PORT"] == "8001"
    assert "ports" not in services["collector"]


def test_api_publishes_port_8000_on_all_interfaces_of_its_container() -> None:
    api = compose_services()["api"]

    assert "8000:8000" in api["ports"]
    assert environment_of(api)["API_HOST"] == "0.0.0.0"


# --- .env.example ---


def test_env_example_names_every_setting_and_nothing_else() -> None:
    names = set(env_example_values())

    assert names - SETTINGS_VARIABLES == set(), "not read by Settings"
    assert SETTINGS_VARIABLES - names == set(), "missing from .env.example"


def test_env_example_holds_no_secret_values() -> None:
    values = env_example_values()

    assert values["CLIENT_SECRET"] == ""
    assert values["LLM_API_KEY"] == ""
    assert values["MONGO_URI"] == ""


def test_env_example_loads_as_valid_embedded_settings(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    for name, value in env_example_values().items():
        clean_environment.setenv(name, value or "")

    settings = load_settings()

    assert settings.resolved_log_engine == "embedded"
    assert settings.resolved_store_engine == "embedded"
    assert settings.client_secret is None
    assert settings.tenant_id is None


def test_env_example_copied_to_dot_env_is_a_working_setup(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")

    settings = load_settings()

    assert settings.resolved_log_engine == "embedded"
    assert settings.resolved_store_engine == "embedded"
    assert settings.data_dir == Path(".aoc-data")


# --- deploy/Dockerfile and .dockerignore ---


def test_image_installs_the_runtime_dependencies_only() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")

    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    # The wheel built in the first stage, without the dev extra (tests/packaging runs these steps).
    assert re.search(r"pip install --no-cache-dir /dist/\*\.whl(\s|$)", dockerfile)
    assert "[dev]" not in dockerfile
    assert "secantus" not in dockerfile.lower()
    assert "calfkit" not in dockerfile.lower()


def test_image_runs_aoc_as_an_unprivileged_user() -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")

    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["aoc"]' in dockerfile
    assert "MAPPINGS_PATH=/app/mappings.yml" in dockerfile
    assert "DATA_DIR=/data" in dockerfile


def test_build_context_leaves_out_local_environments_tests_and_secrets() -> None:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    ignored = {line.strip() for line in lines if line.strip()}

    assert {".venv", ".git", "tests", "bench", ".aoc-data", ".env"} <= ignored


# --- load_settings ---


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RETENTION_DAYS", "-3"), ("CORS_ORIGINS", "not-a-url"), ("FETCH_INTERVAL_MINUTES", "0")],
)
def test_a_bad_setting_stops_start_up_with_one_line_naming_the_variable(
    clean_environment: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    clean_environment.setenv(variable, value)

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    message = str(raised.value)
    assert "\n" not in message
    assert variable in message


def test_a_configuration_error_never_shows_a_secret_set_alongside(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    clean_environment.setenv("LLM_API_KEY", "sk-live-do-not-print-1234")
    clean_environment.setenv("CLIENT_SECRET", "client-secret-do-not-print")
    clean_environment.setenv("RETENTION_DAYS", "-3")

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    message = str(raised.value)
    assert "RETENTION_DAYS" in message
    assert "do-not-print" not in message


def test_a_configuration_error_about_a_secret_names_it_without_its_value(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(mongo_uri=["mongodb://aoc:hunter2@mongo:27017"])

    message = str(raised.value)
    assert "MONGO_URI" in message
    assert "hunter2" not in message


def test_an_empty_variable_means_not_set(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("CLIENT_SECRET", "")
    clean_environment.setenv("MONGO_URI", "")
    clean_environment.setenv("API_PORT", "")

    settings = load_settings()

    assert settings.client_secret is None
    assert settings.resolved_store_engine == "embedded"
    assert settings.api_port == 8000
