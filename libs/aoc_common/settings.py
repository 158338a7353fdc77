"""Every environment variable any AOC service reads, validated once at start-up.

A service that starts with a bad value does damage quietly (an alerter with no rules, a TTL that deletes
everything), so a bad value must stop start-up with one line naming the variable. Secrets are `SecretStr`
so that they never reach a log line or a repr; this module must never print a secret's value.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_mappings_path() -> Path:
    """The copy of `mappings.yml` an installed wheel carries next to this module, else the checkout's.

    An editable install (and the tests) read the repository's own file, which is the one people edit.
    """
    packaged = Path(__file__).resolve().parent / "mappings.yml"
    return packaged if packaged.is_file() else REPO_ROOT / "mappings.yml"


class ConfigurationError(SystemExit):
    """Raised (as a clean exit, never a traceback) when a setting is invalid."""


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class Settings(BaseSettings):
    """The one settings object; field `x` is read from environment variable `X` (or `.env`)."""

    # env_ignore_empty: `CLIENT_SECRET=` (as in .env.example, or `${VAR}` of an unset variable in
    # compose) means "not set", not an empty secret that would count as configured.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    # --- Microsoft 365 app registration used by the collector (client credentials) ---
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None

    # --- API authentication (Entra ID bearer tokens) ---
    auth_enabled: bool = False
    auth_tenant_id: str | None = None
    auth_client_id: str | None = None
    auth_allowed_roles: CommaList = Field(default_factory=list)
    auth_allowed_groups: CommaList = Field(default_factory=list)
    # Token verification and write access (API): keys come from AUTHORITY_HOST/<tenant>/discovery/
    # v2.0/keys; writes need one of AUTH_WRITER_ROLES (`*`: any allowed reader) or AUTH_WRITER_GROUPS.
    authority_host: str = "https://login.microsoftonline.com"
    auth_writer_roles: CommaList = Field(default_factory=lambda: ["AOC.Writer"])
    auth_writer_groups: CommaList = Field(default_factory=list)
    auth_clock_skew_seconds: int = Field(default=120, ge=0, le=600)
    # With sign-in on, /docs and /openapi.json need a reader unless this is true.
    public_api_docs: bool = False

    # --- Collection schedule and retention ---
    enable_periodic_fetch: bool = False
    fetch_interval_minutes: int = Field(default=60, ge=1, le=24 * 60)
    retention_days: int = Field(default=90, ge=1, le=3650)
    # Events the store sink writes per transaction at most (fewer when fewer are waiting).
    store_batch_max_events: int = Field(default=2000, ge=1, le=10_000)

    # --- API ---
    cors_origins: CommaList = Field(
        default_factory=lambda: ["http://localhost:8000", "http://127.0.0.1:8000"]
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    # --- AI features: /api/ask, /api/events/{id}/explain, MCP `ask` (README "Asking questions") ---
    ai_features_enabled: bool = False
    llm_api_key: SecretStr | None = None
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Whether event fields (masked, bounded) may go to the model: for the narrative answer of a
    # question and for explaining an event. Off: questions answer with the computed summary and
    # explain is off; the model then only ever sees questions and the filter vocabulary.
    ai_send_event_fields: bool = True
    ai_narrative_max_events: int = Field(default=20, ge=1, le=50)
    llm_max_prompt_tokens: int = Field(default=6000, ge=1000, le=200_000)
    llm_max_answer_tokens: int = Field(default=800, ge=100, le=16_000)
    # Questions and explanations each user may ask per minute (both count).
    ai_requests_per_minute: int = Field(default=10, ge=1, le=10_000)

    # --- Downstream consumers ---
    alerts_enabled: bool = True
    # Sigma rules (README "Sigma rules"): files or folders, separated by ":", loaded by the alerter;
    # placeholder values such as {"internal_domains": ["contoso.com"]} (JSON).
    sigma_rules_path: str = ""
    sigma_placeholders: dict[str, list[str]] = Field(default_factory=dict)
    siem_enabled: bool = False
    siem_webhook_url: str | None = None

    # --- SIEM forwarder (SIEM_ENABLED, SIEM_WEBHOOK_URL above); see README "Forwarding to a SIEM" ---
    siem_format: Literal["json", "splunk_hec", "syslog"] = "json"
    # The schema of each forwarded event (SIEM_FORMAT is the transport): AOC's own JSON, ECS, OCSF.
    siem_schema: Literal["aoc", "ecs", "ocsf"] = "aoc"
    # Also publish every event as OCSF on the topic aoc.events.ocsf (the SIEM forwarder does).
    ocsf_topic_enabled: bool = False
    siem_hmac_secret: SecretStr | None = None
    splunk_hec_url: str | None = None
    splunk_hec_token: SecretStr | None = None
    splunk_hec_index: str | None = None
    splunk_hec_sourcetype: str = Field(default="aoc:m365:audit", min_length=1, max_length=200)
    syslog_host: str | None = None
    syslog_port: int = Field(default=514, ge=1, le=65535)
    syslog_payload: Literal["cef", "json"] = "cef"
    syslog_tls: bool = False
    syslog_tls_ca_file: Path | None = None
    siem_batch_max_events: int = Field(default=500, ge=1, le=10_000)
    siem_batch_max_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    siem_batch_linger_ms: int = Field(default=1000, ge=0, le=60_000)
    siem_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    siem_max_attempts: int = Field(default=5, ge=1, le=20)
    siem_breaker_failures: int = Field(default=5, ge=1, le=1000)
    siem_breaker_cooldown_seconds: float = Field(default=60.0, gt=0, le=3600)

    # --- Engines: Kafka + MongoDB in production, SQLite when neither is configured ---
    log_engine: Literal["auto", "embedded", "kafka"] = "auto"
    store_engine: Literal["auto", "embedded", "mongo"] = "auto"
    data_dir: Path = Path(".aoc-data")
    mongo_uri: SecretStr | None = None
    mongo_db: str = Field(default="aoc", min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_-]+$")
    kafka_bootstrap_servers: str | None = None
    kafka_enable_idempotence: bool = True
    kafka_topic_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1000)

    # --- Input hygiene ---
    max_record_bytes: int = Field(default=1_000_000, ge=1024)
    max_future_skew_minutes: int = Field(default=60, ge=0)
    mappings_path: Path = Field(default_factory=default_mappings_path)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Prometheus scrape endpoint of a service process (`aoc run <service>`); the API also serves
    # /metrics on its own port. Empty: no separate endpoint.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    # --- Alerter notifications (a webhook URL often carries its own secret, so it is one) ---
    alert_webhook_url: SecretStr | None = None
    alert_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # --- Collector: Microsoft endpoints (sovereign clouds change them), control app, webhook ---
    graph_base_url: str = "https://graph.microsoft.com"
    management_api_base_url: str = "https://manage.office.com"
    fetch_overlap_minutes: int = Field(default=15, ge=0, le=24 * 60)
    collector_control_host: str = "127.0.0.1"
    collector_control_port: int = Field(default=8001, ge=0, le=65535)  # 0: any free port
    collector_url: str | None = None
    collector_control_token: SecretStr | None = None
    graph_webhook_client_state: SecretStr | None = None

    # --- Normalizer: dedupe window, enrichment through Graph, which runtime on Kafka ---
    dedupe_window_days: int = Field(default=7, ge=1, le=90)
    # On Kafka: the Faust app (the design's choice), or AOC's own aiokafka consumer around the same
    # step (faster; same group, topics and changelogs, so the two can be switched — stop all of one
    # first). The embedded log always runs the embedded runtime.
    normalizer_runtime: Literal["faust", "consumer"] = "faust"
    # The consumer runtime only: map and encode records in this many worker processes (0: in its own).
    normalizer_workers: int = Field(default=0, ge=0, le=64)
    enrichment_enabled: bool = False
    enrichment_cache_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)

    _split_lists = field_validator(
        "auth_allowed_roles", "auth_allowed_groups", "cors_origins", mode="before"
    )(_split_commas)

    _split_writer_lists = field_validator("auth_writer_roles", "auth_writer_groups", mode="before")(
        _split_commas
    )

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins_are_urls(cls, origins: list[str]) -> list[str]:
        return [origin if origin == "*" else _check_http_url(origin) for origin in origins]

    @field_validator("siem_webhook_url", "llm_base_url")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_http_url(value)

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_is_a_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                _check_http_url(value.get_secret_value())
            except ValueError:
                raise ValueError("is not an http(s) URL") from None
        return value

    @field_validator("graph_base_url", "management_api_base_url")
    @classmethod
    def _microsoft_endpoint(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")

    @field_validator("authority_host")
    @classmethod
    def _https_authority(cls, value: str) -> str:
        # The collector sends its client secret there and the API trusts the signing keys it serves,
        # so plain http is refused; a loopback stand-in (tests, local development) is the exception,
        # as OAuth makes for loopback redirects. msal itself insists on https for the collector.
        parts = urlsplit(value)
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"{value!r} is not an https URL")
        return _check_http_url(value).rstrip("/")

    @field_validator("collector_url")
    @classmethod
    def _collector_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_http_url(value).rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.auth_enabled and not (self.auth_tenant_id and self.auth_client_id):
            raise ValueError("AUTH_ENABLED=true needs AUTH_TENANT_ID and AUTH_CLIENT_ID")
        if self.log_engine == "kafka" and not self.kafka_bootstrap_servers:
            raise ValueError("LOG_ENGINE=kafka needs KAFKA_BOOTSTRAP_SERVERS")
        if self.store_engine == "mongo" and not self.mongo_uri:
            raise ValueError("STORE_ENGINE=mongo needs MONGO_URI")
        if self.kafka_heartbeat_interval_ms >= self.kafka_session_timeout_ms:
            raise ValueError(
                "KAFKA_HEARTBEAT_INTERVAL_MS must be lower than KAFKA_SESSION_TIMEOUT_MS"
            )
        return self

    @field_validator("splunk_hec_url")
    @classmethod
    def _optional_hec_url(cls, value: str | None) -> str | None:
        return None if value in (None, "") else _check_http_url(value)

    @field_validator("syslog_host")
    @classmethod
    def _plain_host(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not a host name or address")
        return value

    @model_validator(mode="after")
    def _siem_format_has_its_settings(self) -> Settings:
        """The forwarder must not start and then fail on its first batch for want of a setting."""
        if not self.siem_enabled:
            return self
        if self.siem_format == "json" and not self.siem_webhook_url:
            raise ValueError("SIEM_ENABLED=true with SIEM_FORMAT=json needs SIEM_WEBHOOK_URL")
        if self.siem_format == "splunk_hec" and not (self.splunk_hec_url and self.splunk_hec_token):
            raise ValueError(
                "SIEM_ENABLED=true with SIEM_FORMAT=splunk_hec needs SPLUNK_HEC_URL and "
                "SPLUNK_HEC_TOKEN"
            )
        if self.siem_format == "syslog" and not self.syslog_host:
            raise ValueError("SIEM_ENABLED=true with SIEM_FORMAT=syslog needs SYSLOG_HOST")
        if (
            self.siem_format == "syslog"
            and self.syslog_payload == "cef"
            and self.siem_schema != "aoc"
        ):
            raise ValueError(
                f"SIEM_SCHEMA={self.siem_schema} is a JSON schema: with SIEM_FORMAT=syslog set "
                "SYSLOG_PAYLOAD=json (CEF is its own format)"
            )
        return self

    @model_validator(mode="after")
    def _enrichment_needs_credentials(self) -> Settings:
        if self.enrichment_enabled and not (
            self.tenant_id and self.client_id and self.client_secret
        ):
            raise ValueError("ENRICHMENT_ENABLED=true needs TENANT_ID, CLIENT_ID and CLIENT_SECRET")
        return self

    @cached_property
    def resolved_log_engine(self) -> Literal["embedded", "kafka"]:
        """`auto` means Kafka when a bootstrap address is configured, else the embedded log."""
        if self.log_engine == "auto":
            return "kafka" if self.kafka_bootstrap_servers else "embedded"
        return self.log_engine

    @cached_property
    def resolved_store_engine(self) -> Literal["embedded", "mongo"]:
        """`auto` means MongoDB when MONGO_URI is configured, else the embedded store."""
        if self.store_engine == "auto":
            return "mongo" if self.mongo_uri else "embedded"
        return self.store_engine


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable and never echoing a secret."""
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        if not location:
            lines.append(f"configuration error: {message}")
            continue
        field = Settings.model_fields.get(location.lower().split(".")[0])
        secret = field is not None and "SecretStr" in repr(field.annotation)
        value = problem.get("input")
        shown = "" if secret or value is None else f"={value}" if isinstance(value, str) else ""
        lines.append(f"configuration error: {location}{shown}: {message}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Build the settings or exit with a message naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error)) from None
