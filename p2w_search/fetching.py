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
import time
from urllib.parse import urlsplit

from p2w_search.conf import app_settings

__all__ = ["FetchRefused", "is_url", "check_address", "fetch_image", "TIMEOUT"]

# Seconds: the longest wait on the server (connect, each read) and the longest the body may take.
TIMEOUT = 10
_CHUNK = 64 * 1024


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


def fetch_image(url, *, timeout=TIMEOUT, resolve=socket.getaddrinfo, check=check_address):
    """Return the bytes at ``url`` (http or https), at most ``MAX_IMAGE_BYTES``; raise FetchRefused.

    ``timeout`` (seconds) bounds each wait on the server and, checked between reads, the
    whole body: a server that trickles bytes is cut off as one that never answers.
    ``resolve`` (``socket.getaddrinfo``'s signature) and ``check`` (raises FetchRefused for an
    address that may not be fetched) are seams for tests, whose servers listen on loopback;
    a deployment passes neither, and no setting turns the address check off.
    """
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
    for address in addresses:  # every answer: a client may connect to any of them
        check(address)
    address = sorted(addresses)[0]
    deadline = time.monotonic() + timeout
    if parts.scheme == "https":
        connection = _PinnedHTTPS(parts.hostname, address, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    limit = app_settings.MAX_IMAGE_BYTES
    try:
        connection.request("GET", path, headers={"Host": parts.hostname, "User-Agent": "p2w-search-import"})
        response = connection.getresponse()
        if response.status != 200:
            raise FetchRefused(f"{url} answered HTTP {response.status} (redirects are not followed)")
        data = _read_body(response, limit=limit + 1, deadline=deadline, url=url, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchRefused(f"cannot fetch {url}: {exc}") from None
    finally:
        connection.close()
    if len(data) > limit:
        raise FetchRefused(f"{url} is larger than {limit} bytes")
    return data


def _read_body(response, *, limit, deadline, url, timeout):
    """Read at most ``limit`` bytes of ``response``, refusing once ``deadline`` has passed."""
    chunks, size = [], 0
    while size < limit:
        if time.monotonic() > deadline:
            raise FetchRefused(f"{url} took longer than {timeout:g} s to send")
        chunk = response.read1(min(_CHUNK, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate checked against the host name."""

    def __init__(self, hostname, address, port, *, timeout):
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._hostname = hostname

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._hostname)
