"""`aoc stand-in`: serve the local Microsoft stand-in (Entra ID token endpoint, Graph, Management Activity
API) on its own, so that a staging stack's collector can collect from it over HTTPS as it would from
Microsoft — the same stand-in `aoc demo --source fake` uses, serving the same saved answers.

TLS is mandatory (msal and the collector only talk to https authorities): a self-signed certificate is
made for the advertised host and written beside its key; clients trust exactly that certificate through
`SSL_CERT_FILE`. The command prints every setting a collector needs, then serves until Ctrl-C/SIGTERM.
It never serves anything but the stand-in, and its credentials are the stand-in's own, public ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from aoc_collector.service import FakeMicrosoft, bundled_sample_dir, self_signed_certificate


def collector_settings(fake: FakeMicrosoft, cert_path: Path) -> dict[str, str]:
    """What a collector's environment needs to collect from this stand-in instead of Microsoft."""
    return {
        "TENANT_ID": fake.tenant_id,
        "CLIENT_ID": fake.client_id,
        "CLIENT_SECRET": fake.client_secret,
        "AUTHORITY_HOST": fake.base_url,
        "GRAPH_BASE_URL": fake.graph_base_url,
        "MANAGEMENT_API_BASE_URL": fake.management_api_base_url,
        "SSL_CERT_FILE": str(cert_path),
    }


def serve_stand_in(
    *,
    host: str,
    port: int,
    advertised_host: str | None,
    samples: Path | None,
    tls_dir: Path,
) -> int:
    """Serve until stopped; prints the collector settings first. Exit code."""
    samples = samples or bundled_sample_dir()
    if not samples.is_dir():
        print(f"aoc stand-in: {samples} is not a folder of saved API answers", file=sys.stderr)
        return 2
    public_host = advertised_host or host
    tls_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, _ = self_signed_certificate(tls_dir, public_host)
    fake = FakeMicrosoft(samples)
    fake.base_url = f"https://{public_host}:{port}"
    print(f"AOC Microsoft stand-in serving {samples} at {fake.base_url}", flush=True)
    print(f"its clock stands at {fake.now:%Y-%m-%d %H:%M} UTC (when the answers were recorded)")
    print("point a collector at it with:")
    for name, value in collector_settings(fake, cert_path.resolve()).items():
        print(f"  {name}={value}")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(
            fake.app,
            host=host,
            port=port,
            ssl_certfile=str(cert_path),
            ssl_keyfile=str(key_path),
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
        )
    )
    server.run()  # uvicorn handles SIGINT and SIGTERM: a graceful stop
    return 0
