"""Serve the collector's small ASGI apps (its control app, the local Microsoft stand-in) with uvicorn.

Both run inside the caller's event loop and stop on the caller's event; port 0 picks a free port, and
the bound address is read back once the server listens. The stand-in can be served over TLS with a
certificate made on the spot, because msal only talks to an https authority: the returned SSL context
trusts exactly that certificate and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aoc_common.shared_loop_server import SharedLoopServer

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and, for TLS, a client context that trusts it."""

    url: str
    port: int
    client_ssl: ssl.SSLContext | None


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, bytes]:
    """A fresh key and certificate for `host` (and localhost); returns cert path, key path, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AOC local Microsoft stand-in")])
    now = datetime.now(UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path, cert_pem


@contextlib.asynccontextmanager
async def serve_app(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False
) -> AsyncIterator[Served]:
    """Serve `app` until the block exits; yields once the socket is listening."""
    with tempfile.TemporaryDirectory(prefix="aoc-tls-") as scratch:
        options: dict[str, Any] = {}
        client_ssl = None
        if tls:
            cert_path, key_path, cert_pem = self_signed_certificate(Path(scratch), host)
            options = {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path)}
            client_ssl = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
        server = SharedLoopServer(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                server_header=False,
                lifespan="off",
                **options,
            )
        )
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while not server.started:
                    if task.done():
                        await task
                        raise RuntimeError(f"could not serve on {host}:{port}")
                    await asyncio.sleep(0.01)
            bound = server.servers[0].sockets[0].getsockname()[1]
            scheme = "https" if tls else "http"
            yield Served(f"{scheme}://{host}:{bound}", int(bound), client_ssl)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
