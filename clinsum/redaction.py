"""What of a run config may be stored: credentials are replaced by ``"***"``, nothing else is.

Two places hold credentials in a config:

- a value whose key *names* a secret: ``api_key``, ``token``, ``refresh_token``,
  ``password``, ``client_secret``, ``authorization``, ``private_key``... The key is
  split into words and its last word decides, so ordinary options that merely
  contain such a word (``max_output_tokens``, ``token_limit``) are kept exactly:
  a stored config must be usable again to resume the run;
- a URL in any string value: ``user:password@`` becomes ``***@`` and a key-like
  query parameter (``key=``, ``api_key=``, ``token=``, ``sig=``, ``signature=``,
  ``X-Amz-Signature=``...) gets the value ``***``. The rest of the URL is kept,
  since the endpoint is part of what a run was.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["MASK", "is_secret_key", "redact", "redact_url"]

MASK = "***"

_SECRET_WORDS = frozenset({
    "token", "password", "passwd", "pwd", "secret", "credential", "credentials", "authorization",
    "apikey", "auth", "signature", "sig", "cookie", "passphrase",
})
"""A key whose last word is one of these names a secret."""
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "auth", "subscription", "account", "signing"})
"""``<qualifier>_key`` names a secret (``api_key``, ``private_key``); ``key`` alone does only in a URL query."""
_QUERY_ONLY = frozenset({"key", "code", "client_secret"})
_WORD = re.compile(r"[a-z0-9]+")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_BARE_USERINFO = re.compile(r"^[^\s/@:]+:[^\s/@]+@(?=\S)")


def is_secret_key(name: str, *, in_query: bool = False) -> bool:
    """Whether a config key (or, with ``in_query``, a URL query parameter) names a credential."""
    words = _WORD.findall(name.lower())
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_WORDS:
        return True
    if last == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS:
        return True
    return in_query and (last in _QUERY_ONLY or "_".join(words) in _QUERY_ONLY)


def redact_url(url: str) -> str:
    """The URL with its password and key-like query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # not a URL we can take apart: keep nothing of it
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(_redact_parameter(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_parameter(parameter: str) -> str:
    """``name=value`` with the value masked when the name is key-like; other parameters kept verbatim."""
    name, sep, _ = parameter.partition("=")
    return f"{name}={MASK}" if sep and is_secret_key(unquote_plus(name), in_query=True) else parameter


def _redact_text(text: str) -> str:
    if "://" not in text:
        # a host without a scheme, as OLLAMA_HOST-style options allow: user:password@host:port
        return _BARE_USERINFO.sub(f"{MASK}@", text) if "@" in text else text
    return _URL.sub(lambda match: redact_url(match.group()), text)


def redact(value: Any) -> Any:
    """A copy of a config structure with every credential replaced (see the module docstring)."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_key(str(k)) and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _redact_text(value)
    return value
