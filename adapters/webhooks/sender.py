"""WebhookSender over `requests`: one POST of a signed notification to the URL a business configured.

Whatever the receiver does is an answer, never an exception: refused, unresolvable, timed out, a TLS
failure, a 4xx or 5xx, a redirect (never followed: the signature is for the URL the business gave us)
all become a failed `WebhookResponse` with a short reason that the delivery log shows. Of the
receiver's body at most BODY_MAX bytes are read, so a huge answer costs the worker nothing.

The URL is the business's to choose, so without a guard it could point the worker at the service's
own network (the database, a cloud metadata endpoint). Unless the operator allows private addresses,
a host that resolves to any address that is not globally reachable is refused before a socket is
opened. DNS rebinding (a name that answers a public address to the check and a private one to the
connect) is covered too: the connection is not made by name. Each new connection resolves the host
once, checks every address, and opens its socket to a checked address itself (`_connect`); urllib3
then goes on as usual with that socket, so the Host header, TLS's SNI and the certificate's check
are still made against the URL's host name, and https stays correct. No proxy is used: one would
make the check about the proxy's address instead of the receiver's.

`timeout_ms` bounds the connect and each wait for the receiver's bytes, not a whole exchange: a
receiver that trickles its headers or body can hold a worker for longer, and the job's own timeout
(RQ's) is the outer bound.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import requests
import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from application.ports.leads import WebhookResponse

USER_AGENT = "mcagent-webhooks/1"
#: What is read of a receiver's answer at most; what is shown of it in an error.
BODY_MAX = 4_096
SHOWN_MAX = 200

#: The NAT64 prefix whose addresses carry an IPv4 address in their last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolve = Callable[[str], list[str]]


class _Refused(Exception):
    """A host that resolves to an address the service may not call. Not an OSError on purpose: urllib3
    and requests let it through untouched, and no socket was opened."""

    def __init__(self, host: str) -> None:
        super().__init__(f"refused: {host} resolves to a private or local address")


def resolve_host(host: str) -> list[str]:
    """The addresses of `host` (an IP address resolves to itself), in the resolver's order."""
    found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def is_public(address: str) -> bool:
    """Whether `address` may be called: globally reachable. An IPv6 address that stands for an IPv4
    one (mapped, or NAT64's on an IPv6-only network) is judged as that one; a 6to4 address must carry
    a public one too."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return is_public(str(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)))
        if ip.sixtofour is not None and not is_public(str(ip.sixtofour)):
            return False
    local = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
    return ip.is_global and not (local or ip.is_reserved or ip.is_unspecified)


class RequestsWebhookSender:
    def __init__(
        self,
        timeout_ms: int,
        allow_private: bool = False,
        resolve: Resolve = resolve_host,
        *,
        hosts_kept: int = 16,
        connections_per_host: int = 2,
        ca_bundle: str | None = None,
    ) -> None:
        """`resolve` maps a host to its addresses (a test's fixed answers); `ca_bundle` trusts these CAs
        instead of certifi's (a private CA). Kept-alive connections: up to `connections_per_host` to
        each of the last `hosts_kept` receivers."""
        self._timeout_ms = timeout_ms
        self._allow_private = allow_private
        self._resolve = resolve
        session = requests.Session()
        adapter = _CheckedAddressAdapter(
            self._addresses_to_connect, pool_connections=hosts_kept, pool_maxsize=connections_per_host
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.trust_env = False  # no proxy, no ~/.netrc: the receiver's address is the one checked
        # Identity: a compressed answer could inflate far past BODY_MAX while it is read.
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        if ca_bundle is not None:
            session.verify = ca_bundle
        self._session = session

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        started = time.monotonic()
        status, error = self._exchange(url, body, {**headers, "User-Agent": USER_AGENT})
        return WebhookResponse(status=status, error=error, duration_ms=int((time.monotonic() - started) * 1000))

    def close(self) -> None:
        self._session.close()

    def _exchange(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        timeout_s = self._timeout_ms / 1000
        try:
            with self._session.post(
                url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False, stream=True
            ) as response:
                answer = _read_at_most(response, BODY_MAX)
                status = response.status_code
                location = response.headers.get("Location")
        except _Refused as refused:
            return None, str(refused)
        except requests.RequestException as error:
            return None, self._reason(error, url)
        if 200 <= status < 300:
            return status, None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirect to {_shown(location or 'nowhere')} not followed"
        shown = _shown(answer.decode("utf-8", errors="replace"))
        return status, f"HTTP {status}: {shown}" if shown else f"HTTP {status}"

    def _reason(self, error: requests.RequestException, url: str) -> str:
        """A short reason for a POST that got no HTTP answer (requests' own text repeats the URL and
        the pool's internals)."""
        if isinstance(error, requests.ConnectTimeout):
            return f"timed out after {self._timeout_ms} ms connecting"
        if isinstance(error, requests.Timeout):
            return f"timed out after {self._timeout_ms} ms"
        if isinstance(error, requests.exceptions.SSLError):
            return _shown(f"TLS error: {_innermost(error)}")
        cause = _innermost(error)
        if isinstance(cause, socket.gaierror):
            return _shown(f"could not resolve {_host_of(url)}: {cause.strerror or cause}")
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, requests.ConnectionError):
            return _shown(f"connection failed: {cause}")
        return _shown(f"not sent: {cause}")

    def _addresses_to_connect(self, host: str) -> list[str]:
        addresses = self._resolve(host)
        if not self._allow_private and not all(is_public(address) for address in addresses):
            raise _Refused(host)
        return addresses


class _CheckedAddressAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections open their sockets to `addresses_of(host)`, not to the host."""

    def __init__(self, addresses_of: Resolve, *, pool_connections: int, pool_maxsize: int) -> None:
        self._addresses_of = addresses_of  # before super().__init__, which builds the pool manager
        # No retries: a failed POST is an attempt; the delivery is tried again later with its backoff.
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: object) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        addresses_of = self._addresses_of

        class CheckedHTTPConnection(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                return _connect(self, addresses_of)

        class CheckedHTTPSConnection(HTTPSConnection):
            def _new_conn(self) -> socket.socket:
                return _connect(self, addresses_of)

        class CheckedHTTPPool(HTTPConnectionPool):
            ConnectionCls = CheckedHTTPConnection

        class CheckedHTTPSPool(HTTPSConnectionPool):
            ConnectionCls = CheckedHTTPSConnection

        self.poolmanager.pool_classes_by_scheme = {"http": CheckedHTTPPool, "https": CheckedHTTPSPool}


def _connect(connection: HTTPConnection, addresses_of: Resolve) -> socket.socket:
    """urllib3's `HTTPConnection._new_conn`, with the addresses resolved and checked once, here, and
    the socket opened to one of them: what was checked is what is connected to. Failures are raised as
    urllib3 raises them, so that requests tells a timeout from a refusal as usual."""
    try:
        addresses = addresses_of(connection.host)
    except socket.gaierror as error:
        raise NameResolutionError(connection.host, connection, error) from error
    except UnicodeError:  # a label the resolver cannot even encode (empty, over 63 characters)
        unusable = socket.gaierror(socket.EAI_NONAME, "not a valid host name")
        raise NameResolutionError(connection.host, connection, unusable) from unusable
    failure: OSError = OSError(f"{connection.host} has no address")
    for address in addresses:
        try:
            return create_connection(
                (address, connection.port),
                connection.timeout,
                source_address=connection.source_address,
                socket_options=connection.socket_options,
            )
        except OSError as error:
            failure = error
    if isinstance(failure, TimeoutError):
        raise ConnectTimeoutError(connection, f"connecting to {connection.host} timed out") from failure
    raise NewConnectionError(connection, f"Failed to establish a new connection: {failure}") from failure


def _read_at_most(response: requests.Response, limit: int) -> bytes:
    """The first `limit` bytes of the answer. A body that ends within them lets the connection be
    reused; a longer one is not read on, and its connection is closed with the response. A failure
    while reading is no failure of the POST: the status line came."""
    answer = b""
    try:
        for chunk in response.iter_content(chunk_size=1_024):
            answer += chunk
            if len(answer) >= limit:
                break
    except requests.RequestException:
        pass
    return answer[:limit]


def _innermost(error: BaseException) -> BaseException:
    """The first cause of a requests error: requests wraps urllib3's MaxRetryError, which wraps the
    connection's error, which was raised from the socket's."""
    while True:
        inner = error.__cause__ or getattr(error, "reason", None)
        if inner is None and error.args and isinstance(error.args[0], BaseException):
            inner = error.args[0]
        if not isinstance(inner, BaseException) or inner is error:
            return error
        error = inner


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _shown(text: str) -> str:
    return " ".join(text.split())[:SHOWN_MAX]
