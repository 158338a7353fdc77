"""One line that tells an operator what is wrong: the setting involved and the cause.

A command or service that cannot start because of something the operator can fix — a path that is a
file, a folder it may not write, an engine it cannot reach — says so in one line that names the setting
(`DATA_DIR=/srv/aoc: permission denied`), so that the fix is obvious from the message alone. Tracebacks
are for bugs: they appear only with `aoc --debug` (or LOG_LEVEL=DEBUG). This module must never put a
secret's value in a line: MONGO_URI may carry a password, so it is named, never shown.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

from aiokafka.errors import KafkaError

from aoc_common.event_store.base import StoreError
from aoc_common.message_log.base import MessageLogError
from aoc_common.settings import Settings

MAX_LINE = 400
_state = {"tracebacks": False}

_PATH_CAUSES = {
    errno.EEXIST: "is a file, not a folder",
    errno.ENOTDIR: "a part of it is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "does not exist",
    errno.ENOSPC: "no space left on the device",
}


def show_tracebacks(enabled: bool) -> None:
    """`aoc --debug`: let failures show their traceback instead of one line."""
    _state["tracebacks"] = enabled


def tracebacks_shown(settings: Settings | None = None) -> bool:
    return _state["tracebacks"] or (settings is not None and settings.log_level == "DEBUG")


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """`text` on one line, shortened at a word boundary with "…" when longer than `limit`."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    shortened = textwrap.shorten(flat, width=limit, placeholder=" …")
    if shortened == "…":  # a single word longer than the limit
        return flat[: limit - 1] + "…"
    # "reason: detail; …" reads as if something were missing: end on the last word instead.
    return shortened.removesuffix(" …").rstrip(" ;,:") + "…"


def describe_failure(
    error: BaseException,
    settings: Settings | None = None,
    *,
    paths: Mapping[str, Path] | None = None,
) -> str:
    """The setting (or option) involved and the cause, in one line; a generic line for anything else.

    `paths` names command-line options that hold paths (`{"--data-dir": …}`); they are checked before
    the settings, since the operator typed them.
    """
    named_paths = {**(paths or {}), **_setting_paths(settings)}
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.filename is not None:
            owner = _owner_of(Path(str(cause.filename)), named_paths)
            reason = _PATH_CAUSES.get(cause.errno or 0, cause.strerror or str(cause))
            if owner is not None:
                name, path = owner
                where = "" if Path(str(cause.filename)) == path else f" ({cause.filename})"
                return one_line(f"{name}={path}: {reason}{where}")
            return one_line(f"{cause.filename}: {reason}")
    if settings is not None and isinstance(error, MessageLogError | StoreError | sqlite3.Error):
        embedded = (
            settings.resolved_log_engine == "embedded"
            if isinstance(error, MessageLogError)
            else settings.resolved_store_engine == "embedded"
        )
        if embedded:
            data_dir = _data_dir_setting(settings, paths or {})
            if _unwritable(settings.data_dir):
                return one_line(f"{data_dir}: permission denied (cannot write there): {error}")
            return one_line(f"{data_dir}: {error}")
        if isinstance(error, MessageLogError):
            return one_line(f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}: {error}")
        # pymongo appends its whole topology description to a server selection timeout; the URI
        # itself is never shown, since it may carry a password.
        return one_line(f"MONGO_URI: {str(error).split(', Topology Description:', 1)[0]}")
    if isinstance(error, KafkaError) and settings is not None:  # raised by Faust, unwrapped
        return one_line(f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}: {error}")
    if isinstance(error, OSError):
        return one_line(f"{error.strerror or error}")
    return one_line(
        f"{type(error).__name__}: {error} (run `aoc --debug …` to see where it happened)"
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _setting_paths(settings: Settings | None) -> dict[str, Path]:
    if settings is None:
        return {}
    values = ((name.upper(), getattr(settings, name)) for name in type(settings).model_fields)
    return {name: value for name, value in values if isinstance(value, Path)}


def _owner_of(path: Path, named: Mapping[str, Path]) -> tuple[str, Path] | None:
    """The named path that is `path` or one of its parents (the longest match wins)."""
    target = path.absolute()
    best: tuple[str, Path] | None = None
    for name, candidate in named.items():
        absolute = candidate.absolute()
        related = target.is_relative_to(absolute) or absolute.is_relative_to(target)
        deeper = best is None or len(absolute.parts) > len(best[1].absolute().parts)
        if related and deeper:
            best = (name, candidate)
    return best


def _data_dir_setting(settings: Settings, paths: Mapping[str, Path]) -> str:
    """`DATA_DIR=…`, or the command-line option that set it (`--data-dir=…`)."""
    option = next((name for name, path in paths.items() if path == settings.data_dir), "DATA_DIR")
    return f"{option}={settings.data_dir}"


def _unwritable(data_dir: Path) -> bool:
    """The folder, or one of the engines' files in it, exists and this process may not write it."""
    if not data_dir.is_dir():
        return False
    files = [data_dir, *data_dir.glob("*.sqlite3")]
    return any(not os.access(path, os.W_OK) for path in files)
