"""Who sent a request, and what may not be in one.

The client address is worked out once here and used by everything that decides by it
(the login rate limit through allauth's adapter, /metrics). Behind a reverse proxy every
request reaches coachgate from the proxy's address; the client is then the hop that the
trusted proxy (COACHGATE_TRUSTED_PROXY) wrote into ``X-Forwarded-For``. A header sent by
anyone else is not believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest

from coachgate.kit.config import conf

# Headers a reverse proxy adds. A request that carries one came through a proxy.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def _clean(address: str) -> str | None:
    address = address.strip().strip('"')
    if address.startswith("[") and "]" in address:  # "[::1]" or "[::1]:port"
        address = address[1:address.index("]")]
    elif address.count(":") == 1:  # "1.2.3.4:port"
        address = address.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def trusted_proxy() -> str:
    return conf().TRUSTED_PROXY.strip()


def from_trusted_proxy(request: HttpRequest) -> bool:
    proxy = trusted_proxy()
    if not proxy:
        return False
    remote = _clean(str(request.META.get("REMOTE_ADDR", "")))
    return proxy == "*" or (remote is not None and remote == _clean(proxy))


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or, for a request from the trusted proxy, the
    hop TRUSTED_PROXY_COUNT places from the right of its X-Forwarded-For.

    `coachgate serve` lets waitress do the same rewrite before Django sees the request
    (so REMOTE_ADDR is already the client there); doing it again here is harmless, since
    a rewritten REMOTE_ADDR is the client's, not the proxy's."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    if from_trusted_proxy(request):
        hops = [h for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        count = conf().TRUSTED_PROXY_COUNT
        if hops:
            hop = _clean(hops[-count] if len(hops) >= count else hops[0])
            if hop:
                return hop
    return _clean(remote) or remote


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_local(request: HttpRequest) -> bool:
    """True for a request from this machine itself, not relayed by any proxy.

    A request relayed by an unknown proxy carries forwarding headers (coachgate serve
    keeps them for Django) and is never local; one relayed by the trusted proxy is local
    only if the client it names is. A trusted proxy that names no client (no
    X-Forwarded-For) but sends another forwarding header is not local either."""
    forwarded = any(h in request.headers for h in FORWARDING_HEADERS)
    if forwarded and not from_trusted_proxy(request):
        return False
    if (from_trusted_proxy(request) and forwarded
            and "X-Forwarded-For" not in request.headers):
        return False
    return is_loopback(client_ip(request))


# --- NUL characters ----------------------------------------------------------------------
# PostgreSQL cannot store U+0000 in text and SQLite stores it silently; no field of
# coachgate means it. Input is refused before any route sees it.


def nul_locations(value: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Where in a decoded JSON value a string (a key or a value) holds a NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            if "\x00" in name:
                yield (*where, name.replace("\x00", "\\u0000"))
            yield from nul_locations(item, (*where, name.replace("\x00", "\\u0000")))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nul_locations(item, (*where, str(i)))
