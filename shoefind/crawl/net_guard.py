"""Which addresses the downloader may connect to.

Image URLs come from search results, i.e. from strangers: a URL (or a redirect) pointing at
10.0.0.1 or 169.254.169.254 must not make us fetch from the local network or the cloud
metadata service. Every resolved address of the host is checked before connecting, and the
connection itself is pinned to a checked address (no second DNS lookup to rebind).
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit
from shoefind.errors import ShoefindError

ALLOWED_SCHEMES = ("http", "https")


class AddressRefused(ShoefindError):
    """The URL is not allowed; str() is the reason."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known prefix: the last 32 bits are an IPv4 address


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        else:
            inner = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
            if inner is None and ip in NAT64:
                inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            if inner is not None and _forbidden(inner, allow_loopback=False):
                return f"wrapped-{_forbidden(inner, allow_loopback=False)} (IPv4 {inner} inside)"
            if ip.is_site_local:
                return "site-local"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    for kind in ("unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


def check_ip(ip: str, allow_loopback: bool = False) -> None:
    kind = _forbidden(ipaddress.ip_address(ip), allow_loopback)
    if kind:
        raise AddressRefused(f"refused: {ip} is a {kind} address")


def resolve(host: str, port: int, allow_loopback: bool = False) -> list[str]:
    """All addresses of `host`, each checked; raises AddressRefused if any is forbidden."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        ips = [str(literal)]   # a literal address: checked without any lookup or connection
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host} ({exc.strerror})") from None
        except UnicodeError:
            raise AddressRefused(f"refused: '{host}' is not a valid host name") from None
        ips = list(dict.fromkeys(info[4][0] for info in infos))
    for ip in ips:
        try:
            check_ip(ip, allow_loopback)
        except AddressRefused as exc:
            raise AddressRefused(f"{exc} ({host} resolves to it)" if literal is None else str(exc)) from None
    return ips


def check_url(url: str, allow_loopback: bool = False) -> None:
    """Scheme and every address of the host; raises AddressRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise AddressRefused(f"refused: scheme '{parts.scheme or '(none)'}' (only http and https)")
    if not parts.hostname:
        raise AddressRefused("refused: URL has no host")
    resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), allow_loopback)


def guarded_session(allow_loopback: bool = False, on_response_socket=None):
    """A requests.Session whose every connection goes only to checked addresses.

    Environment proxies are ignored: through a proxy we would check the proxy's address,
    not the image host's. `on_response_socket(sock)`, if given, is called with the socket
    just before a response is read (new or reused connection alike), so a caller can cut it
    off at a deadline.
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def pinned(base):
        class Pinned(base):
            def _new_conn(self):
                ips = resolve(self._dns_host, self.port, allow_loopback)
                name = self._dns_host
                self._dns_host = ips[0]   # connect to the address we checked, not a new lookup
                try:
                    return super()._new_conn()
                finally:
                    self._dns_host = name   # TLS SNI and certificate checks use the name

            def getresponse(self):
                if on_response_socket is not None and self.sock is not None:
                    on_response_socket(self.sock)
                return super().getresponse()
        return Pinned

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = pinned(HTTPConnection)

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = pinned(HTTPSConnection)

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(max_retries=0, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
