"""Outbound HTTP that stays on the internet: Web Push and the practices' webhook endpoints.

A URL someone else gave us (a browser's push endpoint, a practice's webhook
endpoint) must not lead to this machine or its private network. Two checks:

- when the URL is given, ``private_host()`` refuses a name or literal address
  that is plainly not on the internet (``localhost``, ``10.0.0.5``, ``[::1]``)
  and, for a name, the addresses it resolves to at that moment;
- when the request goes, ``guarded_session()`` resolves the name once per
  connection and connects only to the addresses it checked: a name that
  answers differently the second time (DNS rebinding) cannot lead here. It
  never follows a redirect, which could point anywhere.

Each caller says, per host, whether private addresses are allowed
(a test's loopback server, an on-premises receiver on a private network).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from functools import lru_cache

import requests
import urllib3

# Whether a host may resolve to a private or loopback address (read when connecting).
AllowPrivate = Callable[[str], bool]


def resolved_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to, if every one is on the internet (or ``allow_private``);
    else ``OSError`` saying why."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(a).split("%")[0] for *_, (a, *_) in infos))
    if not allow_private and (inside := sorted(a for a in addresses if not ipaddress.ip_address(a).is_global)):
        raise OSError(f"{host} resolves to {', '.join(inside)}, not to the internet")
    return addresses


def private_host(host: str, *, resolve: bool = False, port: int = 443) -> str | None:
    """Why ``host`` is not on the internet (this machine, a private network), or None.

    A name that cannot be resolved now is not refused here: the check when connecting holds.
    """
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not resolve:
            return None
        try:
            resolved_addresses(host, port, allow_private=False)
        except OSError as exc:
            return None if str(exc).startswith("cannot resolve") else str(exc)
        return None
    if not address.is_global:
        return f"{host} is not an internet address"
    return None


class NotOnTheInternet(urllib3.exceptions.NewConnectionError):
    """The URL's name does not lead to the internet: nothing was sent."""

    def __init__(self, conn, why: str):
        super().__init__(conn, why)
        self.why = why


def refusal(exc: requests.RequestException) -> str | None:
    """Why the guard refused this request (nothing was sent), or None for any other failure."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return reason.why if isinstance(reason, NotOnTheInternet) else None


class _GuardedConnection:
    """Connects to what ``resolved_addresses`` allowed, and nowhere else: the TCP connection goes to
    the checked address, while TLS and the Host header keep the URL's name."""

    allow_private: AllowPrivate

    def _new_conn(self):
        name = self._dns_host
        try:
            addresses = resolved_addresses(name.rstrip("."), self.port, self.allow_private(name.rstrip(".")))
        except OSError as exc:
            raise NotOnTheInternet(self, str(exc)) from exc
        error = None
        for address in addresses:
            self._dns_host = address  # only the socket uses it; self.host is read again below
            try:
                return super()._new_conn()
            except urllib3.exceptions.NewConnectionError as exc:
                error = exc
            finally:
                self._dns_host = name
        raise error


@lru_cache(maxsize=8)
def _pools(allow_private: AllowPrivate) -> dict[str, type]:
    """Connection pools whose connections keep to ``allow_private``'s rule."""
    rule = {"allow_private": staticmethod(allow_private)}
    http = type("GuardedHTTPConnection", (_GuardedConnection, urllib3.connection.HTTPConnection), rule)
    https = type("GuardedHTTPSConnection", (_GuardedConnection, urllib3.connection.HTTPSConnection), rule)
    return {
        "http": type("GuardedHTTPPool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("GuardedHTTPSPool", (urllib3.HTTPSConnectionPool,), {"ConnectionCls": https}),
    }


class _Guarded(requests.adapters.HTTPAdapter):
    def __init__(self, allow_private: AllowPrivate):
        self.allow_private = allow_private  # before the base class builds its pool manager
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pools(self.allow_private)


def guarded_session(allow_private: AllowPrivate) -> requests.Session:
    """A session that connects only to internet addresses (or, per host, private ones ``allow_private``
    allows) and never follows a redirect. ``allow_private`` must be a module-level function."""
    session = requests.Session()
    session.max_redirects = 0  # a redirect could point anywhere, this machine's network included
    adapter = _Guarded(allow_private)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
