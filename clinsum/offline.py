"""Offline mode: refuse every network connection that would leave the machine.

``clinsum run --offline`` promises that no byte of a note leaves the machine.
Two layers keep that promise:

1. ``refuse_remote_spec`` refuses a provider that is remote by nature
   (Anthropic, Vertex AI) from its spec, before it is built (so no credential is
   asked for); ``check_offline_providers`` then accepts only built providers that
   say they are local (``local = True``: extractive, replay, ``ollama`` pointed at
   a loopback host) and refuses the run before any note is read by a provider.
   Both run for summarizers and judges alike, in ``clinsum run`` and ``clinsum score``
   (``providers.registry.build`` with ``offline=True``).
2. ``install_guard`` / ``offline_guard`` patch the Python socket layer for the
   whole process, so that even a provider, SDK or telemetry library that
   misjudges itself cannot reach a non-loopback address. Patched:

   - ``socket.socket.connect`` / ``connect_ex`` (every TCP/UDP connect, IPv4 and
     IPv6, including those made by asyncio, anyio, httpx and ``ssl``),
   - ``socket.socket.sendto`` / ``sendmsg`` (connectionless UDP),
   - ``socket.create_connection``,
   - ``socket.getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``: a name that
     is not a loopback name is refused *before* resolution, so not even a DNS
     query (which could carry data in the name) goes out. ``localhost`` resolves
     as usual and only its loopback answers are returned.

   A refused attempt raises ``OfflineViolation`` naming the address, before the
   original function runs: the packet is never sent.

What the guard cannot see: sockets opened by C code that bypasses Python's
``socket`` module (for example gRPC's C core) and child processes. That is why
layer 1 refuses non-local providers outright instead of relying on layer 2.
Unix-domain sockets are local and always allowed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from clinsum.errors import ConfigError, FatalError

__all__ = [
    "ALWAYS_REMOTE",
    "DEFAULT_ALLOWED",
    "OfflineViolation",
    "check_offline_providers",
    "guard_installed",
    "install_guard",
    "is_loopback_host",
    "offline_guard",
    "refuse_remote_spec",
    "uninstall_guard",
    "violation_in",
]

DEFAULT_ALLOWED: tuple[str, ...] = ("127.0.0.0/8", "::1")
"""Networks reachable in offline mode: IPv4 and IPv6 loopback."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
"""Host names that resolve to loopback without asking a DNS server (``/etc/hosts``)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OfflineViolation(FatalError):
    """A connection to a non-loopback address was attempted in offline mode.

    A ``FatalError`` so that the dispatcher never retries it; it is also a
    ``ClinsumError``, so providers let it through unchanged.
    """

    def __init__(self, address: str, action: str = "connect to") -> None:
        self.address = address
        super().__init__(
            f"offline mode: refused to {action} {address}; only loopback addresses are allowed "
            "while --offline is on, so no note can leave this machine"
        )


def violation_in(exc: BaseException) -> OfflineViolation | None:
    """The ``OfflineViolation`` inside ``exc``, if any: itself, in an exception group
    (anyio's happy-eyeballs task group wraps connect errors), or in its cause chain.

    Provider boundaries call this so that a refused connection surfaces as the
    guard's own error and is never mistaken for a network failure worth retrying.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OfflineViolation):
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def is_loopback_host(host: str | None, allowed: Sequence[Network] | None = None) -> bool:
    """True when ``host`` (an IP literal or a loopback name, or a URL) stays on this machine."""
    if not host:
        return False
    if "://" in host:
        host = urlsplit(host).hostname or ""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host in LOOPBACK_NAMES:
        return True
    address = _ip(host)
    if address is None:
        return False
    return _allowed_ip(address, allowed if allowed is not None else _networks(DEFAULT_ALLOWED))


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _allowed_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _networks(allowed_hosts: Iterable[str]) -> list[Network]:
    try:
        return [ipaddress.ip_network(h, strict=False) for h in allowed_hosts]
    except ValueError as exc:
        raise ConfigError(f"offline guard: invalid allowed network: {exc}") from exc


class _Guard:
    """The installed patches and the originals they replace."""

    def __init__(self, networks: list[Network]) -> None:
        self.networks = networks
        self.originals: dict[tuple[Any, str], Any] = {}
        self.owned: set[tuple[Any, str]] = set()
        """(owner, name) pairs that were not in the owner's own ``__dict__`` before patching."""
        self.resolve: Any = None
        """The original ``getaddrinfo``, to check what a loopback *name* really resolves to."""
        self.verdicts: dict[str, bool] = {}
        """Host -> allowed, so that repeated connections to one host are judged once."""

    def host_allowed(self, host: Any) -> bool:
        if host is None:
            return True  # getaddrinfo(None, port): the local wildcard/loopback, no lookup
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        host = str(host)
        allowed = self.verdicts.get(host)
        if allowed is None:
            allowed = self.verdicts[host] = is_loopback_host(host, self.networks)
        return allowed

    def check_address(self, family: int, address: Any, action: str) -> None:
        if family == getattr(socket, "AF_UNIX", object()):
            return
        if isinstance(address, tuple) and address:
            host, port = address[0], (address[1] if len(address) > 1 else "?")
            if not self.host_allowed(host):
                raise OfflineViolation(_format(host, port), action)
            if isinstance(host, str) and _ip(host) is None and self.resolve is not None:
                # connect() resolves a name in C, past our getaddrinfo: check what it will reach.
                answers = {info[4][0] for info in self.resolve(host, None, family)}
                if not all(self.host_allowed(a) for a in answers):
                    raise OfflineViolation(f"{_format(host, port)} ({', '.join(sorted(answers))})", action)
        elif isinstance(address, (str, bytes)):  # AF_UNIX path given on another family: local
            return
        else:
            raise OfflineViolation(repr(address), action)


def _format(host: Any, port: Any) -> str:
    host = host.decode() if isinstance(host, bytes) else str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_lock = threading.Lock()
_active: _Guard | None = None
_depth = 0


def guard_installed() -> bool:
    return _active is not None


def install_guard(allowed_hosts: Iterable[str] = DEFAULT_ALLOWED) -> None:
    """Refuse, for the rest of the process, every connection outside ``allowed_hosts``.

    Nested installs are counted; each needs its own ``uninstall_guard``. The
    first install decides the allowed networks.
    """
    global _active, _depth
    networks = _networks(allowed_hosts)
    with _lock:
        _depth += 1
        if _active is not None:
            return
        guard = _Guard(networks)
        _patch(guard)
        _active = guard


def uninstall_guard() -> None:
    """Undo one ``install_guard``; the originals come back when the last one is undone."""
    global _active, _depth
    with _lock:
        if _active is None:
            return
        _depth -= 1
        if _depth > 0:
            return
        guard, _active = _active, None
        for (owner, name), original in guard.originals.items():
            if (owner, name) in guard.owned:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


@contextmanager
def offline_guard(allowed_hosts: Iterable[str] = DEFAULT_ALLOWED) -> Iterator[None]:
    """The guard for the duration of a with-block."""
    install_guard(allowed_hosts)
    try:
        yield
    finally:
        uninstall_guard()


def _replace(guard: _Guard, owner: Any, name: str, replacement: Any) -> None:
    guard.originals[(owner, name)] = getattr(owner, name)
    if isinstance(owner, type) and name not in owner.__dict__:
        guard.owned.add((owner, name))
    setattr(owner, name, replacement)


def _patch(guard: _Guard) -> None:
    sock_cls = socket.socket
    orig_connect = sock_cls.connect
    orig_connect_ex = sock_cls.connect_ex
    orig_sendto = sock_cls.sendto
    orig_sendmsg = getattr(sock_cls, "sendmsg", None)
    orig_create_connection = socket.create_connection
    orig_getaddrinfo = socket.getaddrinfo
    orig_gethostbyname = socket.gethostbyname
    orig_gethostbyname_ex = socket.gethostbyname_ex
    guard.resolve = orig_getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        guard.check_address(self.family, address, "connect to")
        return orig_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check_address(self.family, address, "connect to")
        return orig_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        address = args[-1]
        guard.check_address(self.family, address, "send to")
        return orig_sendto(self, data, *args)

    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
        if len(args) >= 3 and args[2] is not None:
            guard.check_address(self.family, args[2], "send to")
        assert orig_sendmsg is not None
        result: int = orig_sendmsg(self, buffers, *args)
        return result

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        guard.check_address(socket.AF_INET, address, "connect to")
        return orig_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if not guard.host_allowed(host):
            raise OfflineViolation(_format(host, port), "resolve")
        results = orig_getaddrinfo(host, port, *args, **kwargs)
        if host is None:
            return list(results)
        # "localhost" could be mapped to a public address in /etc/hosts: keep loopback answers only.
        kept = [r for r in results if r[0] not in (socket.AF_INET, socket.AF_INET6)
                or guard.host_allowed(r[4][0])]
        if not kept:
            raise OfflineViolation(_format(host, port), "resolve (it maps to no loopback address)")
        return kept

    def gethostbyname(host: str) -> str:
        if not guard.host_allowed(host):
            raise OfflineViolation(str(host), "resolve")
        address: str = orig_gethostbyname(host)
        if not guard.host_allowed(address):
            raise OfflineViolation(f"{host} ({address})", "resolve")
        return address

    def gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
        if not guard.host_allowed(host):
            raise OfflineViolation(str(host), "resolve")
        name, aliases, addresses = orig_gethostbyname_ex(host)
        return name, aliases, [a for a in addresses if guard.host_allowed(a)]

    _replace(guard, sock_cls, "connect", connect)
    _replace(guard, sock_cls, "connect_ex", connect_ex)
    _replace(guard, sock_cls, "sendto", sendto)
    if orig_sendmsg is not None:
        _replace(guard, sock_cls, "sendmsg", sendmsg)
    _replace(guard, socket, "create_connection", create_connection)
    _replace(guard, socket, "getaddrinfo", getaddrinfo)
    _replace(guard, socket, "gethostbyname", gethostbyname)
    _replace(guard, socket, "gethostbyname_ex", gethostbyname_ex)


ALWAYS_REMOTE = frozenset({"anthropic", "vertex"})
"""Providers that always send requests off the machine, whatever their options."""


def refuse_remote_spec(spec: str) -> None:
    """Refuse, from the spec alone, a provider that can never run offline.

    Called before the provider is built, so that offline mode says "offline"
    rather than asking for a credential the user should not set at all.
    """
    name = spec.partition(":")[0].strip().lower()
    if name in ALWAYS_REMOTE:
        raise ConfigError(
            f"offline mode: '{spec}' would send notes off this machine; offline accepts only local "
            "providers (extractive, replay, ollama on 127.0.0.1/::1/localhost)")


def check_offline_providers(providers: Iterable[Any]) -> None:
    """Refuse a run in offline mode unless every provider keeps notes on this machine.

    A provider qualifies only with ``local = True``; an ``ollama`` provider also
    needs a loopback host (checked again here, not only trusted from ``local``).
    """
    refused: list[str] = []
    for provider in providers:
        spec = getattr(provider, "spec", repr(provider))
        host = getattr(provider, "host", None)
        if getattr(provider, "local", False) is not True:
            where = f" ({host})" if host else ""
            refused.append(f"'{spec}' sends requests off this machine{where}")
            continue
        if str(spec).startswith("ollama:") and not is_loopback_host(host):
            refused.append(f"'{spec}' points at {host!r}, which is not a loopback host")
    if refused:
        raise ConfigError(
            "offline mode accepts only local providers (extractive, replay, ollama on 127.0.0.1/::1/"
            "localhost): " + "; ".join(refused)
        )
