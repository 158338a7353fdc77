"""The Mongo client's options: what the operator wrote in MONGO_URI, then AOC's bounded defaults.

pymongo lets a keyword argument win over the same option in the URI, so passing AOC's timeouts as
keywords would silently override `?serverSelectionTimeoutMS=10000` written for a replica set across
regions. AOC therefore passes a default only for the options the URI leaves out: an unconfigured
URI still fails fast when the database is unreachable, and a configured one does what it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import uri_parser

APP_NAME = "aoc"


@dataclass(frozen=True)
class ClientOptions:
    """The keyword arguments for the client, and the `maxTimeMS` the store puts on its queries."""

    keywords: dict[str, Any]
    query_timeout_ms: int


def uri_options(uri: str) -> dict[str, Any]:
    """The options the URI sets, by lowercased name (URI options are case-insensitive), with the
    values pymongo reads (timeouts in seconds, 0 as None).

    Only the query string is parsed: `uri_parser.parse_uri` would resolve a `mongodb+srv://` host in
    DNS, which the client does itself when it connects (and whose TXT records never set timeouts).
    """
    query = uri.partition("?")[2]
    if not query:
        return {}
    return {name.lower(): value for name, value in uri_parser.split_options(query).items()}


def client_options(
    uri: str, *, server_selection_timeout_ms: int, operation_timeout_ms: int
) -> ClientOptions:
    """AOC's defaults for what the URI does not set; the URI's own options are left to win.

    Connecting is bounded like server selection (the URI's, when it sets one) and each network wait
    by the operation timeout. A URI `timeoutMS` (pymongo's overall operation timeout) then bounds
    server selection and every operation itself, `maxTimeMS` included.
    Queries carry the same bound on the server (`maxTimeMS`), so a URI `socketTimeoutMS` (other than
    0, "no socket timeout") sets that too: a query the socket still waits for is not cut short.
    """
    written = uri_options(uri)
    selection_seconds = written.get("serverselectiontimeoutms")
    if selection_seconds is not None:  # a longer wait for a server allows as long a connection
        server_selection_timeout_ms = round(selection_seconds * 1000)
    defaults: dict[str, Any] = {
        "serverSelectionTimeoutMS": server_selection_timeout_ms,
        "connectTimeoutMS": server_selection_timeout_ms,
        "socketTimeoutMS": operation_timeout_ms,
        "appname": APP_NAME,
    }
    keywords = {name: value for name, value in defaults.items() if name.lower() not in written}
    socket_timeout = written.get("sockettimeoutms")
    query_timeout_ms = round(socket_timeout * 1000) if socket_timeout else operation_timeout_ms
    # Datetimes come back aware: the store compares them with aware ones. Not a URI option.
    return ClientOptions({"tz_aware": True, **keywords}, query_timeout_ms)
