"""The `aoc` command: the one entry point for people and containers.

- `aoc demo`: the whole pipeline in one process on the embedded engines, fed with the bundled samples.
- `aoc run <service>`: one service in the foreground (what each container runs).
- `aoc topics`: create every topic (a one-shot step before the consumers start).
- `aoc replay`: move a stopped consumer group to an offset or a time, to backfill or re-process.
- `aoc ingest PATH`: publish saved API answers to the raw topics of the configured engine.
- `aoc stand-in`: serve the local Microsoft stand-in over HTTPS, for a staging stack's collector.
- `aoc renormalize`: publish named versions of events whose directory names were pending; with
  `--remap`, bring stored events up to the mapping in force.
- `aoc mcp`: the read-only MCP server on stdin/stdout, for AI assistants.
- `aoc completion <shell>`: the shell completion script.

A failure an operator can fix (a bad path, a missing permission, an engine that cannot be reached) ends
in one line naming the setting and the cause and a non-zero exit code; a traceback only with `--debug`.
This module is the composition root: the only place that imports several services at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

import shtab

from aoc_cli.services import SERVICES, definition, service_module
from aoc_common import topics
from aoc_common.logging import configure_logging
from aoc_common.message_log import open_message_log
from aoc_common.operator_errors import describe_failure, show_tracebacks
from aoc_common.service import run_service
from aoc_common.settings import ConfigurationError, Settings, load_settings

COMPLETION_SHELLS = ("bash", "zsh")

# Examples shown by `aoc <command> --help`; tests/test_cli.py checks that each one parses.
EXAMPLES = {
    "aoc": [
        "aoc demo                                   # the whole pipeline on the bundled samples",
        "aoc run api                                # one service in the foreground",
        "aoc replay --group aoc-store --topic aoc.events --offset 0",
        'eval "$(aoc completion bash)"              # tab completion in this shell',
    ],
    "demo": [
        "aoc demo                                   # ingest the samples, serve http://127.0.0.1:8000",
        "aoc demo --source fake                     # through the live collector and a local stand-in",
        "aoc demo --exit-when-ingested --port 8001  # report and stop",
        "aoc demo --data-dir /tmp/aoc-demo --no-malformed",
    ],
    "run": [
        "aoc run api                                # API and web UI on API_HOST:API_PORT",
        "LOG_ENGINE=embedded DATA_DIR=/srv/aoc aoc run store",
        "KAFKA_BOOTSTRAP_SERVERS=kafka:9092 aoc run normalizer",
    ],
    "topics": ["KAFKA_BOOTSTRAP_SERVERS=kafka:9092 aoc topics"],
    "replay": [
        "aoc replay --group aoc-store --topic aoc.events --offset 0",
        "aoc replay --group aoc-siem-forwarder --topic aoc.events --timestamp 2026-11-20T00:00:00Z",
        "aoc replay --group aoc-normalizer --topic aoc.raw.directory --offset 0 --follow",
    ],
    "ingest": [
        "KAFKA_BOOTSTRAP_SERVERS=kafka:9092 aoc ingest ./saved-answers   # Graph pages, feed blobs",
        "DATA_DIR=/srv/aoc aoc ingest export.jsonl  # raw envelopes, one per line",
    ],
    "stand-in": [
        "aoc stand-in                               # https://127.0.0.1:8443, prints the settings",
        "aoc stand-in --host 0.0.0.0 --advertised-host stand-in --tls-dir /certs",
    ],
    "renormalize": [
        "aoc renormalize --since 2026-11-20T00:00:00Z",
        "aoc renormalize --since 2026-11-01T00:00:00Z --remap   # after mappings.yml changed",
    ],
    "mcp": ["DATA_DIR=/srv/aoc aoc mcp                  # stdin/stdout, started by an MCP client"],
    "completion": [
        'eval "$(aoc completion bash)"              # this shell only',
        "aoc completion bash > ~/.local/share/bash-completion/completions/aoc",
        'aoc completion zsh > "${fpath[1]}/_aoc"',
    ],
}


def _installed_version() -> str:
    try:
        return version("aoc")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "unknown"


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time") from None
    return parsed


def _examples(command: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aoc",
        description=__doc__.splitlines()[0],
        epilog=_examples("aoc"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aoc {_installed_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (for bug reports)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=_examples(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # Also accepted after the command; SUPPRESS keeps `aoc --debug demo` from being reset.
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="as above")
        return sub

    demo = command("demo", "run the whole pipeline on the bundled sample data")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to serve on (8000)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".aoc-data/demo"),
        help="where the embedded log and store keep their files (.aoc-data/demo)",
    ).complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    demo.add_argument(
        "--samples",
        type=Path,
        default=None,
        help="folder of saved API answers (default: the bundled samples)",
    ).complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    demo.add_argument(
        "--no-malformed",
        action="store_true",
        help="skip the bad-input drill (malformed_inputs.json)",
    )
    demo.add_argument(
        "--exit-when-ingested",
        action="store_true",
        help="stop once everything is stored instead of serving until Ctrl-C",
    )
    demo.add_argument(
        "--source",
        choices=("samples", "fake"),
        default="samples",
        help="samples: publish the saved answers directly; fake: run the live collector against a "
        "local stand-in of Entra ID, Graph and the Management API serving them (no bad-input drill)",
    )

    run = command("run", "run one service in the foreground")
    run.add_argument("service", choices=SERVICES)

    command("topics", "create every AOC topic")

    replay = command(
        "replay", "move a stopped consumer group to an offset or a time (re-processing)"
    )
    replay.add_argument("--group", required=True, help="e.g. aoc-store, aoc-normalizer")
    replay.add_argument("--topic", required=True, help="e.g. aoc.events")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--offset", type=int, help="offset to restart from on every partition")
    target.add_argument(
        "--timestamp",
        type=_parse_time,
        help="restart from the first message at or after this time (ISO 8601)",
    )
    replay.add_argument(
        "--follow",
        action="store_true",
        help="then watch the group re-process: progress, rate and an estimate of the time left",
    )

    ingest = command(
        "ingest",
        "publish saved API answers (the demo samples, an export, *.jsonl raw envelopes) "
        "to the raw topics of the configured engine",
    )
    ingest.add_argument(
        "path", type=Path, help="a folder of saved answers, or a .jsonl file"
    ).complete = shtab.FILE  # type: ignore[attr-defined]
    ingest.add_argument(
        "--with-malformed",
        action="store_true",
        help="also publish malformed_inputs.json (the bad-input drill) when the folder has one",
    )

    stand_in = command(
        "stand-in",
        "serve the local stand-in of Entra ID, Graph and the Management Activity API "
        "(HTTPS) for a staging stack's collector",
    )
    stand_in.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    stand_in.add_argument("--port", type=int, default=8443, help="port to listen on (8443)")
    stand_in.add_argument(
        "--advertised-host",
        help="the name collectors reach it by (e.g. a compose service name); default: --host",
    )
    stand_in.add_argument(
        "--samples", type=Path, default=None, help="saved API answers (default: the bundled ones)"
    ).complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    stand_in.add_argument(
        "--tls-dir",
        type=Path,
        default=Path(".aoc-data/stand-in"),
        help="where its self-signed certificate (cert.pem: give it to clients) and key are written",
    ).complete = shtab.DIRECTORY  # type: ignore[attr-defined]

    renormalize = command(
        "renormalize",
        "re-read the raw topics from a time and publish events whose names can now be resolved "
        "(--remap: every event, as the mapping in force maps it)",
    )
    renormalize.add_argument(
        "--since", required=True, type=_parse_time, help="first raw record time (ISO 8601)"
    )
    renormalize.add_argument(
        "--remap",
        action="store_true",
        help="republish every event of the range as mappings.yml now maps it (after an upgrade or "
        "an edit); enrichment is then optional",
    )

    command("mcp", "serve read-only MCP tools over stdio (for AI assistants)")

    completion = command("completion", "print the shell completion script")
    completion.add_argument("shell", choices=COMPLETION_SHELLS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_tracebacks(args.debug)
    if args.command == "completion":
        print(shtab.complete(parser, shell=args.shell))
        return 0
    if args.command == "demo":
        from aoc_cli.demo import DemoOptions, run_demo

        return run_demo(
            DemoOptions(
                host=args.host,
                port=args.port,
                data_dir=args.data_dir,
                samples=args.samples,
                include_malformed=not args.no_malformed,
                exit_when_ingested=args.exit_when_ingested,
                source=args.source,
            )
        )
    if args.command == "run":
        return run_service(definition(args.service))
    if args.command == "stand-in":
        from aoc_cli.stand_in import serve_stand_in

        paths = {"--tls-dir": args.tls_dir, "--samples": args.samples}
        try:
            return serve_stand_in(
                host=args.host,
                port=args.port,
                advertised_host=args.advertised_host,
                samples=args.samples,
                tls_dir=args.tls_dir,
            )
        except Exception as error:
            if args.debug:
                raise
            named = {name: path for name, path in paths.items() if path is not None}
            print(f"aoc stand-in: {describe_failure(error, paths=named)}", file=sys.stderr)
            return 1
    settings = _settings_or_exit()
    configure_logging("aoc", settings.log_level)
    try:
        return asyncio.run(_command(args, settings))
    except Exception as error:
        if args.debug:
            raise
        print(f"aoc {args.command}: {describe_failure(error, settings)}", file=sys.stderr)
        return 1


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as error:
        print(error.code, file=sys.stderr)
        raise SystemExit(2) from None


async def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "topics":
        return await _create_topics(settings)
    if args.command == "renormalize":
        return await service_module("normalizer").renormalize_since(
            settings, args.since, remap=args.remap
        )
    if args.command == "ingest":
        from aoc_cli.ingest import ingest

        return await ingest(settings, args.path, include_malformed=args.with_malformed)
    if args.command == "mcp":
        return await service_module("api").serve_mcp_stdio(settings)
    from aoc_cli.replay import replay

    return await replay(
        settings, args.group, args.topic, args.offset, args.timestamp, follow=args.follow
    )


async def _create_topics(settings: Settings) -> int:
    message_log = open_message_log(settings, client_id="aoc-topics")
    await message_log.start()
    try:
        await message_log.ensure_topics(topics.ALL_TOPICS)
    finally:
        await message_log.stop()
    print("topics ready: " + ", ".join(topics.ALL_TOPICS))
    return 0


def run() -> NoReturn:
    """The `aoc` command: `main`, then an exit that skips the interpreter's last garbage collections.

    Those walk every object the imports made (FastAPI, MCP, pydantic models) only to free memory the
    process is about to give back: 0.1 s for `aoc topics`, ~1 s for `aoc mcp`, paid by every command
    and most visibly after an error. `gc.freeze()` leaves those objects out; everything AOC opened
    is closed by then (engines stop in `finally` blocks, logging flushes at exit).
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
