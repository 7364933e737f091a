"""Who may ask: an optional bearer token, required when the API is bound beyond loopback.

On loopback without a token, only this machine can connect, but a web page in a browser here could
still reach it through a DNS name rebound to 127.0.0.1: the Host header must then name loopback
(the review page does the same). Bound to any other address, every route but /health and the
docs needs `Authorization: Bearer TOKEN`, compared in constant time.
"""
from __future__ import annotations

import hmac
import ipaddress

from shoefind.errors import UserError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MIN_TOKEN = 16          # characters: a token short enough to guess protects nothing


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:       # a host name other than localhost: it may resolve anywhere
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to bind beyond loopback without a token, or with one too short to mean anything."""
    if token is not None and len(token) < MIN_TOKEN:
        raise UserError(f"the API token is {len(token)} characters: give at least {MIN_TOKEN} characters "
                        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
    if not is_loopback(host) and not token:
        raise UserError(f"--host {host} is reachable from other machines: give a bearer token with --token "
                        "(or SHOEFIND_SERVE_TOKEN), which every request must then send")


def token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token (`Bearer TOKEN`)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
