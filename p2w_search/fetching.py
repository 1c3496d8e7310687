"""Fetch an image named by URL in a catalog manifest, without letting the server be used against itself.

Off unless ``P2W_SEARCH["IMPORT_FETCH_URLS"]``. The host is resolved once, every address
is checked (no private, loopback, link-local, multicast or reserved ones: no server-side
request forgery), and the connection goes to the checked address, so a second DNS answer
cannot swap it. No redirects are followed; time and size are limited.
"""

import http.client
import ipaddress
import socket
import ssl
from urllib.parse import urlsplit

from p2w_search.conf import app_settings

__all__ = ["FetchRefused", "is_url", "check_address", "fetch_image"]

TIMEOUT = 10


class FetchRefused(ValueError):
    """The URL may not or cannot be fetched; the message says why."""


def is_url(name):
    return name.lower().startswith(("http://", "https://"))


def check_address(address):
    """Raise FetchRefused when ``address`` is not a public unicast address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise FetchRefused(f"refused to fetch from {address}: not a public address")


def fetch_image(url, *, resolve=socket.getaddrinfo):
    """Return the bytes at ``url`` (http or https), at most ``MAX_IMAGE_BYTES``."""
    if not app_settings.IMPORT_FETCH_URLS:
        raise FetchRefused("fetching image URLs is turned off on this shop; put the images in the archive")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = {info[4][0] for info in resolve(parts.hostname, port, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        raise FetchRefused(f"cannot resolve {parts.hostname!r}") from None
    for address in addresses:
        check_address(address)
    address = sorted(addresses)[0]
    if parts.scheme == "https":
        connection = _PinnedHTTPS(parts.hostname, address, port, timeout=TIMEOUT)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=TIMEOUT)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("GET", path, headers={"Host": parts.hostname, "User-Agent": "p2w-search-import"})
        response = connection.getresponse()
        if response.status != 200:
            raise FetchRefused(f"{url} answered HTTP {response.status} (redirects are not followed)")
        data = response.read(app_settings.MAX_IMAGE_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchRefused(f"cannot fetch {url}: {exc}") from None
    finally:
        connection.close()
    if len(data) > app_settings.MAX_IMAGE_BYTES:
        raise FetchRefused(f"{url} is larger than {app_settings.MAX_IMAGE_BYTES} bytes")
    return data


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate checked against the host name."""

    def __init__(self, hostname, address, port, *, timeout):
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._hostname = hostname

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._hostname)
