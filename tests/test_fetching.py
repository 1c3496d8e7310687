"""The manifest's URL fetcher against test servers on loopback that misbehave on purpose.

The fetcher refuses loopback addresses, so each test passes ``check=``, which lets through the
one address its server listens on and applies the real check to every other; everything
else (resolving once, connecting to the checked address, no redirects, the size cap, the
timeout) is the code a deployment runs.
"""

import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from p2w_search.fetching import FetchRefused, check_address, fetch_image
from tests.factories import png

IMAGE = png((10, 120, 200))
HOST = "images.example"  # never resolved by the system: every lookup goes through the test's resolver


class Handler(BaseHTTPRequestHandler):
    """Answers by path; the server's ``seen`` list records (path, Host header) of each request."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host")))
        getattr(self, "answer_" + self.path.strip("/").split("?")[0].replace("-", "_").replace(".", "_"))()

    def send_body(self, body, *, length=True):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer_image_png(self):
        self.send_body(self.server.body)

    def answer_redirect(self):
        self.send_response(302)
        self.send_header("Location", self.server.redirect_to)
        self.send_header("Content-Length", str(len(IMAGE)))
        self.end_headers()
        self.wfile.write(IMAGE)  # a body a careless client would take for the image

    def answer_big_png(self):
        self.send_body(b"\x89PNG" + b"\0" * 5000)

    def answer_endless_png(self):
        """No length and no end: only the client's own limit stops it."""
        self.send_response(200)
        self.end_headers()
        try:
            while True:  # about 8 MB/s, until the client hangs up
                self.wfile.write(b"\0" * 8192)
                time.sleep(0.001)
        except OSError:
            pass

    def answer_silent_png(self):
        """Takes the request and says nothing for 6 s, then hangs up."""
        time.sleep(6)

    def answer_drip_png(self):
        """Answers at once, then one byte every 0.1 s: no single wait is long."""
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass


@contextmanager
def serve(address="127.0.0.1", *, port=0, body=IMAGE, tls=None):
    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    server.seen, server.body, server.redirect_to = [], body, None
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def resolving_to(*answers):
    """A resolver that gives ``answers[0]`` (a list of addresses) first, then the next, ...; ``calls`` counts."""

    def resolve(host, port, type=None):
        assert host == HOST, host
        answer = answers[min(resolve.calls, len(answers) - 1)]
        resolve.calls += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answer]

    resolve.calls = 0
    return resolve


def allowing(address):
    """The real address check, except for the test server's own loopback ``address``."""

    def check(candidate):
        if candidate != address:
            check_address(candidate)

    return check


@pytest.fixture
def fetching_on(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMPORT_FETCH_URLS": True, "MAX_IMAGE_BYTES": 1000}


def fetch(server, path, **kwargs):
    host, port = server.server_address[:2]
    kwargs.setdefault("resolve", resolving_to([host]))
    kwargs.setdefault("check", allowing(host))
    scheme = kwargs.pop("scheme", "http")
    return fetch_image(f"{scheme}://{HOST}:{port}{path}", **kwargs)


def test_fetches_the_image_from_the_checked_address_with_the_host_name(fetching_on):
    with serve() as server:
        assert fetch(server, "/image.png?v=2") == IMAGE
    assert server.seen == [("/image.png?v=2", HOST)]


def test_a_second_dns_answer_cannot_move_the_connection(fetching_on):
    """DNS rebinding: the name resolves to the allowed address when checked, then to an internal one."""
    with serve("127.0.0.1") as checked:
        port = checked.server_address[1]
        with serve("127.0.0.2", port=port, body=b"internal secret") as internal:  # the same port, elsewhere
            resolve = resolving_to(["127.0.0.1"], ["127.0.0.2"])
            data = fetch_image(f"http://{HOST}:{port}/image.png", resolve=resolve, check=allowing("127.0.0.1"))
    assert data == IMAGE and resolve.calls == 1
    assert checked.seen == [("/image.png", HOST)] and internal.seen == []


def test_every_address_of_the_answer_is_checked(fetching_on):
    with serve() as server:
        with pytest.raises(FetchRefused, match="refused to fetch from 192.168.1.7: not a public address"):
            fetch(server, "/image.png", resolve=resolving_to(["127.0.0.1", "192.168.1.7"]))
    assert server.seen == []


def test_a_redirect_is_refused_and_not_followed(fetching_on):
    with serve() as server, serve("127.0.0.2") as internal:
        server.redirect_to = f"http://127.0.0.2:{internal.server_address[1]}/image.png"
        with pytest.raises(FetchRefused) as refused:
            fetch(server, "/redirect")
    port = server.server_address[1]
    assert str(refused.value) == f"http://{HOST}:{port}/redirect answered HTTP 302 (redirects are not followed)"
    assert internal.seen == []


def test_a_body_past_the_size_cap_is_refused(fetching_on):
    with serve() as server:
        with pytest.raises(FetchRefused, match=r"/big.png is larger than 1000 bytes$"):
            fetch(server, "/big.png")


def test_an_endless_body_is_cut_off_at_the_size_cap(fetching_on):
    with serve() as server:
        started = time.monotonic()
        with pytest.raises(FetchRefused, match=r"/endless.png is larger than 1000 bytes$"):
            fetch(server, "/endless.png", timeout=2)
    assert time.monotonic() - started < 1.5  # it stops reading at once, not at the timeout


def test_a_server_that_never_answers_times_out(fetching_on):
    with serve() as server:
        started = time.monotonic()
        with pytest.raises(FetchRefused, match=r"cannot fetch http://.*/silent.png: timed out"):
            fetch(server, "/silent.png", timeout=0.5)
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3  # the server would hang up after 6 s


def test_a_server_that_trickles_is_cut_off_at_the_timeout(fetching_on):
    with serve() as server:
        started = time.monotonic()
        with pytest.raises(FetchRefused, match=r"/drip.png took longer than 1 s to send$"):
            fetch(server, "/drip.png", timeout=1)
        elapsed = time.monotonic() - started
    assert elapsed < 3  # the whole body would take 10 s, and no single wait reaches the timeout


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A server TLS context with a self-signed certificate for ``HOST`` (openssl, no network)."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_https_checks_the_certificate_against_the_host_name_on_the_checked_address(fetching_on, self_signed):
    names = []
    self_signed.sni_callback = lambda sslsocket, name, context: names.append(name)
    with serve(tls=self_signed) as server:
        with pytest.raises(FetchRefused, match=r"cannot fetch https://.*: \[SSL: CERTIFICATE_VERIFY_FAILED\]"):
            fetch(server, "/image.png", scheme="https", timeout=5)
    assert names == [HOST]  # the handshake named the host, on the address that was checked


def test_fetching_is_off_unless_the_setting_turns_it_on():
    with serve() as server:
        with pytest.raises(FetchRefused, match="fetching image URLs is turned off on this shop"):
            fetch(server, "/image.png")
    assert server.seen == []


def test_an_import_fetches_with_the_real_address_check(fetching_on, db, media, tmp_path, capsys):
    """The seams are for tests only: the import path refuses the same loopback server."""
    from django.core.management import call_command

    from tests.factories import MerchantFactory

    merchant = MerchantFactory()
    with serve() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/image.png"
        (tmp_path / "c.csv").write_text(f"sku,title,category,price,images\nU-1,Tee,t-shirt,5,{url}\n")
        call_command("p2w_import", str(tmp_path / "c.csv"), merchant=str(merchant.pk))
    assert "row 2: images: refused to fetch from 127.0.0.1: not a public address" in capsys.readouterr().err
    assert server.seen == [] and not merchant.products.exists()
