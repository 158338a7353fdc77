"""Secrets out of audit data before it goes to a language model.

Microsoft's audit records are mostly names and ids, but raw fields can carry what must never leave
for a model provider: a SAS signature in a SharePoint URL, a bearer token in a logged header, a
password in an Exchange cmdlet's parameters, a connection string, a client secret in a changed
property. Two rules, applied to every string of a record:

- **by name**: the value of a field (or of a `{"Name": …, "Value": …}` pair, as Exchange
  parameters and Entra modified properties are written) whose name says secret — password,
  secret, token, credential, authorization, cookie, signature, connection string — is masked
  whole; names of metadata *about* such things (`tokenIssuerType`, `passwordPolicies`,
  `KeyIdentifier`) are kept.
- **by shape**: wherever it appears, text shaped like a credential — a JWT, `Bearer …`, a URL's
  `sig=`/`token=`/`code=` parameter, `AccountKey=…;`, a PEM private key, well-known key prefixes,
  a long random-looking run of letters and digits — is masked in place.

Masking keeps the rest of the string (an analyst and a model still see which URL or cmdlet it was)
and always writes `MASK`, so the model can say "a secret was set" without seeing it. Pure
functions, no I/O.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

MASK = "[MASKED]"

# Field names that hold a secret, and suffixes that make such a name metadata about one.
_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|authori[sz]ation|cookie|signature|"
    r"connection_?string|api_?key|access_?key|account_?key|shared_?key|private_?key|sas_?key|"
    r"assertion|\bpwd\b|\botp\b",
    re.IGNORECASE,
)
_METADATA_SUFFIX = re.compile(
    r"(type|name|issuer|issuers|id|ids|identifier|status|details?|count|date|datetime|time|"
    r"expiry|expiration|expires|description|usage|length|policy|policies|method|methods|source|"
    r"kind|version|required|enabled|hint|lifetime|protection|protectionstatus|state|category|"
    r"validfrom|validuntil|validto|from|until|revoked|issued|created|updated|modified|lastused)$",
    re.IGNORECASE,
)
# Keys that name the field of a name/value pair, and the keys holding its value.
_PAIR_NAME_KEYS = ("name", "displayname", "key", "parameter")
_PAIR_VALUE_KEYS = ("value", "newvalue", "oldvalue", "values")

_SHAPES = [
    # PEM private keys, whole.
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
    ),
    # JSON Web Tokens (access, id, refresh tokens issued as JWTs).
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Well-known key formats: GitHub, Slack, AWS, OpenAI-style, Entra ID client secrets.
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})\b"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\b[A-Za-z0-9_-]{3}\d?Q~[A-Za-z0-9_.~-]{30,}"),
]
# Prefix kept, secret part masked.
_LABELLED_SHAPES = [
    # Authorization header values.
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{12,}"),
    # URL parameters carrying a credential (SAS signature, OAuth code or token, passwords).
    re.compile(
        r"(?i)([?&](?:sig|signature|code|token|access_token|id_token|refresh_token|client_secret|"
        r"password|pwd|apikey|api_key|key|secret|assertion)=)[^&#\s\"']+"
    ),
    # PowerShell parameters (an Exchange cmdlet line): `-Password <value>`.
    re.compile(
        r"(?i)(-(?:Password|Pwd|Secret|ClientSecret|Token|ApiKey|AccessKey|SharedKey)\s+)[^\s,;]+"
    ),
    # Connection strings and key=value lists.
    re.compile(
        r"(?i)(\b(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|"
        r"Secret|Token|ApiKey)\s*[=:]\s*)[^;,\s\]\"'&]+"
    ),
]
# A long run of letters and digits with upper and lower case and digits mixed is a key or a token;
# GUIDs (dashes every few characters), hex digests (one case) and words are not.
MIN_RANDOM_LENGTH = 32
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Random base64 switches class at ~50-60% of characters, CamelCase paths and names at ~25%.
RANDOM_SWITCH_RATIO = 0.38


def is_secret_name(name: str) -> bool:
    """A field name whose value is a secret (and not metadata about one)."""
    compact = name.replace("-", "_").replace(" ", "_")
    if not _SECRET_NAME.search(compact):
        return False
    return not _METADATA_SUFFIX.search(compact.replace("_", ""))


def _char_class(c: str) -> int:
    return 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else 3


def _looks_random(run: str) -> bool:
    """Keys and tokens switch between lower case, upper case and digits at almost every other
    character; words, paths and ids do not (a GUID or a hex digest has one case)."""
    body = _GUID.sub("", run.rstrip("="))
    if len(body) < MIN_RANDOM_LENGTH:
        return False
    classes = [_char_class(c) for c in body]
    if not {0, 1} <= set(classes):
        return False
    letters_and_digits = [c for c in classes if c != 3]
    switches = sum(1 for a, b in pairwise(letters_and_digits) if a != b)
    return switches / len(letters_and_digits) >= RANDOM_SWITCH_RATIO


def mask_text(text: str) -> str:
    """`text` with every credential-shaped part replaced by MASK."""
    for shape in _SHAPES:
        text = shape.sub(MASK, text)
    for shape in _LABELLED_SHAPES:
        text = shape.sub(lambda m: m.group(1) + MASK, text)
    return _RANDOM_RUN.sub(lambda m: MASK if _looks_random(m.group(0)) else m.group(0), text)


def _masked_whole(value: Any) -> Any:
    """A secret field's value: every scalar inside replaced (its shape kept, for the reader)."""
    if isinstance(value, dict):
        return {key: _masked_whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_whole(item) for item in value]
    if value is None or isinstance(value, bool) or value == "" or value == "[]":
        return value  # "no password" and "a password" are different facts
    return MASK


def _pair_name(record: dict[str, Any]) -> str | None:
    for key, value in record.items():
        if key.lower() in _PAIR_NAME_KEYS and isinstance(value, str):
            return value
    return None


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON value with secrets masked, by field name and by shape."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    if not isinstance(value, dict):
        return value
    pair_name = _pair_name(value)
    secret_pair = pair_name is not None and is_secret_name(pair_name)
    masked: dict[str, Any] = {}
    for key, item in value.items():
        if is_secret_name(key) or (secret_pair and key.lower() in _PAIR_VALUE_KEYS):
            masked[key] = _masked_whole(item)
        else:
            masked[key] = mask_secrets(item)
    return masked
