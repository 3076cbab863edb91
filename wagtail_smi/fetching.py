"""Downloading an upscaler's result from the URL it reports, treated as hostile input.

The URL comes from outside (the upscaler's API), and the worker that fetches it sits
inside the shop's network, so the download is guarded against server-side request forgery:

- the URL is parsed once, strictly (no backslashes, userinfo, whitespace or control
  characters; a non-ASCII host must be IDNA-encodable), and rebuilt from the parsed parts,
  so no second parser can read it differently;
- the host is resolved once and every address it resolves to is checked against an
  address policy (by default: public unicast only, IPv6 special ranges included);
- the connection goes to a checked address and nowhere else (no second DNS lookup, so a
  rebinding name cannot swap it), while TLS keeps the host name for SNI, the Host header
  and certificate verification;
- redirects are followed by hand, each hop checked like the first;
- the whole download has one wall-clock deadline: a watchdog shuts the socket down when
  it passes, whatever the transfer is doing (TLS handshake, headers or body), so a server
  that drips bytes cannot hold a worker; and a size cap.

A connection whose download completed is kept alive for the next result of the same worker
thread (each process and thread keeps its own, at most ``MAX_IDLE_CONNECTIONS``), but only
under the key it was checked for: scheme, host name, port, the address it was pinned to
and the trusted certificates. The next download checks its URL from scratch (parse,
resolve, policy) and reuses a connection only when the address it is pinned to is among
the ones just checked; a connection the server closed meanwhile is replaced by a new one.

The resolver and the address policy are plain callables passed to ``ResultFetcher``, so a
test can prove the pinning with a resolver that changes its answer. No proxy is used: a
proxy would resolve the name again itself.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import certifi
import idna
from PIL import Image
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from .conf import smi_settings
from .upscalers.base import RetryableUpscalerError, pixel_limit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[IPAddress]]
AddressPolicy = Callable[[IPAddress], bool]

MAX_URL_LENGTH = 4096
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}

# IPv6 ranges that are not a public host of their own: transition mechanisms that tunnel
# or translate to IPv4 (so they can reach private IPv4 space), local and documentation
# ranges. IPv4-mapped addresses (::ffff:0:0/96) are judged by the IPv4 address they carry.
NON_PUBLIC_IPV6 = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local-use prefix
        "100::/64",  # discard-only
        "2001::/32",  # Teredo
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated)
    )
)

# IPv4 ranges refused on top of what ``ipaddress`` calls not global (its list depends on
# the Python version).
NON_PUBLIC_IPV4 = tuple(
    ipaddress.IPv4Network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)

_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


class ResultRejected(Exception):
    """The upscaler's result cannot be accepted (URL not allowed, too big, not an image)."""


class ConnectionLost(RetryableUpscalerError):
    """The connection broke before the whole answer arrived (not the deadline)."""


# Address policy and resolver ---------------------------------------------------------------


def is_public_address(address: IPAddress) -> bool:
    """The default policy: globally reachable unicast addresses only."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address.scope_id or any(address in network for network in NON_PUBLIC_IPV6):
            return False
    elif any(address in network for network in NON_PUBLIC_IPV4):
        return False
    return address.is_global and not address.is_multicast


def any_address(address: IPAddress) -> bool:
    """``ALLOW_PRIVATE_URLS`` (tests and local setups only): every address is allowed."""
    return True


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system's resolver gives for ``host``, each once, in its order."""
    addresses: list[IPAddress] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


# Parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One URL, parsed once: everything the connection uses comes from here."""

    scheme: str
    host: str  # ASCII (IDNA-encoded) name, or an IP address without brackets
    port: int
    path: str  # path and query, as sent on the request line
    address: IPAddress | None  # the host itself, when it is an IP address

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


def parse_url(url: str, *, schemes: Iterable[str] = ("https",)) -> Target:
    """Parse a result URL strictly; anything a browser, urllib3 and ``urlsplit`` might read
    differently (backslashes, userinfo, control characters) is refused, not repaired."""
    if not isinstance(url, str) or not url:
        raise ResultRejected("result URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise ResultRejected("result URL is too long")
    if _FORBIDDEN_CHARACTERS.search(url) or any(character.isspace() for character in url):
        raise ResultRejected("result URL contains a backslash, whitespace or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError on a port that is not a number or out of range
    except ValueError as exc:
        raise ResultRejected(f"result URL is malformed ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in set(schemes):
        raise ResultRejected(f"result URL scheme {parts.scheme or '?'!r} is not allowed")
    if "@" in parts.netloc:
        raise ResultRejected("result URL carries user information")
    if not (parts.path + parts.query).isascii():
        raise ResultRejected("result URL path is not ASCII (it should be percent-encoded)")
    host, address = _parse_host(parts.netloc, parts.hostname or "")
    path = parts.path or "/"
    if not path.startswith("/"):
        raise ResultRejected("result URL is malformed (no path)")
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, host, port or DEFAULT_PORTS[scheme], path, address)


def _parse_host(netloc: str, hostname: str) -> tuple[str, IPAddress | None]:
    if not hostname:
        raise ResultRejected("result URL has no host")
    if netloc.startswith("["):
        if "%" in hostname:
            raise ResultRejected("result URL has an IPv6 zone id")
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError as exc:  # a zone id, or not an address at all
            raise ResultRejected("result URL has an invalid IPv6 host") from exc
        return str(address), address
    try:
        address = ipaddress.IPv4Address(hostname)
        return str(address), address
    except ValueError:
        pass
    if not hostname.isascii():
        try:
            hostname = idna.encode(hostname, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise ResultRejected(
                f"result URL has an invalid host name ({exc.__class__.__name__})"
            ) from exc
    name = hostname.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ResultRejected("result URL has an invalid host name")
    # "127.1", "0x7f.1" or "2130706433": numbers that resolvers read as IPv4 addresses.
    if labels[-1].isdigit() or re.fullmatch(r"0x[0-9a-f]*", labels[-1]):
        raise ResultRejected(
            "result URL has an invalid host name (a number that is not an address)"
        )
    return name, None


# Connections pinned to a checked address ---------------------------------------------------


class _Watchdog:
    """Ends a transfer at the deadline by shutting its socket down from a timer thread.

    A blocked read returns at once, in whatever phase it is: connecting, the TLS handshake,
    the headers or the body. A per-read timeout is not enough, since a server that sends one
    byte before each timeout keeps every read alive.
    """

    def __init__(self, give_up_at: float):
        self.give_up_at = give_up_at
        self.fired = False
        self._fd: int | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.give_up_at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            # TLS takes the same file descriptor over, so the number stays valid until
            # release(), which runs before the connection is closed.
            self._fd = sock.fileno()
            self._timer = threading.Timer(max(self.remaining(), 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            self.fired = True
            sock = socket.socket(fileno=self._fd)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                sock.detach()

    def release(self) -> None:
        with self._lock:
            self._fd = None
            if self._timer is not None:
                self._timer.cancel()


class _PinnedConnectionMixin:
    """Connect to the address checked beforehand, never to a fresh DNS answer; the host
    name stays the connection's ``host`` for the Host header, SNI and certificate checks."""

    def __init__(self, *args, address: IPAddress, watchdog: _Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._pinned_address = address
        self._watchdog = watchdog

    def _new_conn(self) -> socket.socket:
        try:
            sock = socket.create_connection(
                (str(self._pinned_address), self.port), timeout=self.timeout
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"connecting to {self._pinned_address} timed out"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(
                self, f"cannot connect to {self._pinned_address}: {exc}"
            ) from exc
        self._watchdog.watch(sock)
        return sock


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


# Kept-alive connections -------------------------------------------------------------------

MAX_IDLE_CONNECTIONS = 4
ConnectionKey = tuple[str, str, int, str, str]


class _IdleConnections(threading.local):
    """This thread's kept-alive result connections, by ``ConnectionKey``; forgotten in a
    forked child (django-q2 forks its workers), so no two processes share a socket."""

    def __init__(self):
        self.pid = os.getpid()
        self.connections: dict[ConnectionKey, HTTPConnection] = {}

    def _forget_if_forked(self) -> None:
        if self.pid != os.getpid():
            self.pid, self.connections = os.getpid(), {}

    def take(self, key: ConnectionKey) -> HTTPConnection | None:
        self._forget_if_forked()
        connection = self.connections.pop(key, None)
        if connection is not None and not connection.is_connected:
            connection.close()  # the server closed it meanwhile
            return None
        return connection

    def park(self, key: ConnectionKey, connection: HTTPConnection) -> None:
        self._forget_if_forked()
        previous = self.connections.pop(key, None)
        if previous is not None:
            previous.close()
        while len(self.connections) >= MAX_IDLE_CONNECTIONS:
            self.connections.pop(next(iter(self.connections))).close()
        self.connections[key] = connection


_idle = _IdleConnections()


# The fetcher -----------------------------------------------------------------------------


class ResultFetcher:
    """Fetch one result URL into a temporary file, or raise ``ResultRejected`` (final) or
    ``RetryableUpscalerError`` (a network problem that may pass)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        time_limit: float,
        policy: AddressPolicy = is_public_address,
        resolver: Resolver = system_resolver,
        schemes: Iterable[str] = ("https",),
        ca_file: str | None = None,
        max_redirects: int = 3,
        connect_timeout: float = 10.0,
    ):
        self.max_bytes = max_bytes
        self.time_limit = time_limit
        self.policy = policy
        self.resolver = resolver
        self.schemes = tuple(schemes)
        self.ca_file = ca_file
        self.max_redirects = max_redirects
        self.connect_timeout = connect_timeout

    # Checking --------------------------------------------------------------------------

    def check(self, url: str) -> tuple[Target, list[IPAddress]]:
        """Parse, resolve and check ``url``; the addresses returned are the only ones a
        download may connect to."""
        target = parse_url(url, schemes=self.schemes)
        addresses = [target.address] if target.address is not None else self._resolve(target)
        for address in addresses:
            if not self.policy(address):
                raise ResultRejected(f"result host resolves to a non-public address ({address})")
        return target, addresses

    def _resolve(self, target: Target) -> list[IPAddress]:
        try:
            addresses = [ipaddress.ip_address(a) for a in self.resolver(target.host, target.port)]
        except socket.gaierror as exc:
            raise RetryableUpscalerError(f"cannot resolve the result host: {exc}") from exc
        except UnicodeError as exc:
            raise ResultRejected(
                f"result URL has an invalid host name ({exc.__class__.__name__})"
            ) from exc
        if not addresses:
            raise RetryableUpscalerError("the result host has no address")
        return addresses

    # Fetching --------------------------------------------------------------------------

    def fetch(self, url: str, destination: Path) -> Path:
        give_up_at = time.monotonic() + self.time_limit
        for _hop in range(self.max_redirects + 1):
            target, addresses = self.check(url)
            outcome = self._download(target, addresses, destination, give_up_at)
            if isinstance(outcome, Path):
                return outcome
            url = urljoin(target.url, outcome)
        raise ResultRejected("too many redirects")

    def _connection(self, target: Target, address: IPAddress, watchdog: _Watchdog, timeout: float):
        if target.scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file or certifi.where())
            return _PinnedHTTPSConnection(
                target.host,
                target.port,
                timeout=timeout,
                ssl_context=context,
                address=address,
                watchdog=watchdog,
            )
        return _PinnedHTTPConnection(
            target.host, target.port, timeout=timeout, address=address, watchdog=watchdog
        )

    def _key(self, target: Target, address: IPAddress) -> ConnectionKey:
        return (target.scheme, target.host, target.port, str(address), self.ca_file or "")

    def _reused(self, target: Target, address: IPAddress, watchdog: _Watchdog):
        """A kept-alive connection pinned to this checked address, now under ``watchdog``."""
        connection = _idle.take(self._key(target, address))
        if connection is not None:
            connection.sock.settimeout(max(watchdog.remaining(), 0.001))
            watchdog.watch(connection.sock)
        return connection

    def _download(
        self, target: Target, addresses: list[IPAddress], destination: Path, give_up_at: float
    ):
        """One hop: a file (``Path``), or the ``Location`` of a redirect (``str``)."""
        last_error: Exception | None = None
        for address in addresses:
            watchdog = _Watchdog(give_up_at)
            left = watchdog.remaining()
            if left <= 0:
                raise RetryableUpscalerError("result download took too long")
            reused = self._reused(target, address, watchdog)
            if reused is not None:
                try:
                    return self._exchange_keeping(reused, target, address, destination, watchdog)
                except ConnectionLost:
                    # Closed by the server as the request went out: a GET may be asked
                    # again, on a new connection, within the same deadline.
                    if watchdog.fired or watchdog.remaining() <= 0:
                        raise
                watchdog = _Watchdog(give_up_at)
            connection = self._connection(
                target, address, watchdog, min(self.connect_timeout, watchdog.remaining())
            )
            try:
                connection.connect()
            except (HTTPError, OSError) as exc:
                timed_out = watchdog.fired or watchdog.remaining() <= 0
                watchdog.release()
                connection.close()
                if timed_out:
                    raise RetryableUpscalerError("result download took too long") from exc
                last_error = exc
                continue  # another checked address of the same host may answer
            return self._exchange_keeping(connection, target, address, destination, watchdog)
        raise RetryableUpscalerError(
            f"result download failed: {last_error.__class__.__name__ if last_error else 'no address'}"
        )

    def _exchange_keeping(
        self, connection, target: Target, address: IPAddress, destination: Path, watchdog
    ):
        """``_exchange``, then the connection is kept for the next result when the whole
        answer was read and the server keeps it open (http.client drops ``sock``
        otherwise), or closed."""
        keep = False
        try:
            outcome = self._exchange(connection, target, destination, watchdog)
            keep = isinstance(outcome, Path) and connection.sock is not None
            return outcome
        finally:
            watchdog.release()
            if keep and not watchdog.fired:
                _idle.park(self._key(target, address), connection)
            else:
                connection.close()

    def _exchange(self, connection, target: Target, destination: Path, watchdog: _Watchdog):
        try:
            connection.timeout = max(watchdog.remaining(), 0.001)
            connection.request(
                "GET",
                target.path,
                headers={
                    "Accept": "image/*",
                    "Accept-Encoding": "identity",
                    "User-Agent": "wagtail-smi",
                },
                preload_content=False,
                decode_content=False,
            )
            response = connection.getresponse()
        except (HTTPError, OSError, http.client.HTTPException) as exc:
            raise self._network_error(watchdog, "result download failed", exc) from exc
        if response.status in REDIRECT_STATUSES:
            location = response.headers.get("Location", "")
            if not location:
                raise ResultRejected("result redirect has no Location")
            return location
        if response.status != 200:
            raise RetryableUpscalerError(f"result download answered HTTP {response.status}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ResultRejected(
                f"result is {declared} bytes, over the {self.max_bytes}-byte limit"
            )
        return self._stream_to_file(connection, response, destination, watchdog)

    def _stream_to_file(self, connection, response, destination: Path, watchdog: _Watchdog) -> Path:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, path returned
            dir=destination, prefix="result-", suffix=".part", delete=False
        )
        path = Path(handle.name)
        total = 0
        try:
            with handle:
                while True:
                    left = watchdog.remaining()
                    if left <= 0:
                        raise RetryableUpscalerError("result download took too long")
                    if connection.sock is not None:
                        connection.sock.settimeout(left)
                    try:
                        chunk = response.read1(CHUNK_BYTES)  # one socket read at most
                    except (HTTPError, OSError, http.client.HTTPException) as exc:
                        raise self._network_error(
                            watchdog, "result download broke off", exc
                        ) from exc
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise ResultRejected(f"result is over the {self.max_bytes}-byte limit")
                    handle.write(chunk)
            if watchdog.fired:  # the socket was shut down: what arrived is not the whole file
                raise RetryableUpscalerError("result download took too long")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    @staticmethod
    def _network_error(watchdog: _Watchdog, what: str, exc: Exception) -> RetryableUpscalerError:
        if watchdog.fired or watchdog.remaining() <= 0:
            return RetryableUpscalerError("result download took too long")
        return ConnectionLost(f"{what}: {exc.__class__.__name__}")


# The fetcher the settings describe, and what a fetched result must be --------------------

RESULT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
MAX_REDIRECTS = 3


def temp_dir() -> Path:
    """Where results are streamed and upscaled before storage (cleaned daily)."""
    path = Path(tempfile.gettempdir()) / "wagtail_smi"
    path.mkdir(parents=True, exist_ok=True)
    return path


def result_fetcher(**overrides) -> ResultFetcher:
    """The result fetcher the settings describe: https from public addresses, or (with
    ``ALLOW_PRIVATE_URLS``, tests only) http too and any address. ``overrides`` replace
    its parts (the address policy, the resolver, the trusted certificates)."""
    allow_private = smi_settings.ALLOW_PRIVATE_URLS
    options = {
        "max_bytes": smi_settings.RESULT_MAX_BYTES,
        "time_limit": smi_settings.FETCH_TIMEOUT_SECONDS,
        "policy": any_address if allow_private else is_public_address,
        "schemes": ("https", "http") if allow_private else ("https",),
        "max_redirects": MAX_REDIRECTS,
    }
    options.update(overrides)
    return ResultFetcher(**options)


def check_result_url(url: str, *, fetcher: ResultFetcher | None = None) -> None:
    """Refuse a result URL that may not be fetched."""
    (fetcher or result_fetcher()).check(url)


def fetch_result(url: str, *, fetcher: ResultFetcher | None = None) -> Path:
    """Stream a result to a temporary file: checked and pinned addresses, every redirect
    checked again, a size cap and one deadline for the whole download.

    Raises ``ResultRejected`` (final) or ``RetryableUpscalerError``.
    """
    return (fetcher or result_fetcher()).fetch(url, temp_dir())


def validate_result(path: Path, width: int, height: int) -> Path:
    """Accept only JPEG/PNG/WebP of exactly ``width``×``height``; return it with its suffix.

    Only the header is decoded plus Pillow's ``verify()``: a full decode of a 400-megapixel
    image would need gigabytes of memory in the worker.
    """
    expected = (width, height)
    try:
        # Pillow's bomb guard is lifted to the ordered size only while the header is read
        # (Image.open is where it is checked), then restored for everyone else.
        with pixel_limit(width * height):
            image = Image.open(path)
        with image:
            fmt, size = image.format, image.size
            image.verify()
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise ResultRejected(
            f"the result is not a readable image ({exc.__class__.__name__})"
        ) from exc
    if fmt not in RESULT_FORMATS:
        path.unlink(missing_ok=True)
        raise ResultRejected(f"the result is {fmt}, not JPEG, PNG or WebP")
    if tuple(size) != expected:
        path.unlink(missing_ok=True)
        raise ResultRejected(f"the result is {size[0]}×{size[1]}, expected {width}×{height}")
    final = path.with_suffix(RESULT_FORMATS[fmt])
    path.rename(final)
    return final
