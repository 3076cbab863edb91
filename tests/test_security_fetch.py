"""Fetching the upscaler's result safely: the URL parsed once, every address checked, the
connection pinned to the checked address with TLS verified for the host name, redirects
checked again, and one deadline for the whole download.

Local servers only: an HTTPS file server with a test certificate authority made here with
the ``openssl`` command, a server that drips its answer, and the fake Upsampler.
"""

from __future__ import annotations

import io
import ipaddress
import shutil
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from PIL import Image

from tests.upsampler_server import FakeUpsampler
from wagtail_smi import fetching, queue
from wagtail_smi.fetching import ResultRejected, check_result_url
from wagtail_smi.models import PurchaseJob
from wagtail_smi.operations import maintenance
from wagtail_smi.timeline import describe
from wagtail_smi.upscalers import RetryableUpscalerError

HOST = "upscaled.smi.test"  # a made-up name: only the tests' resolvers know it
OTHER_HOST = "elsewhere.smi.test"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


# Certificates and servers -----------------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA, and two server certificates it signed: one for HOST and 127.0.0.1,
    one for another name only."""
    folder = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wagtail-smi test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )
    for name, san in (("server", f"DNS:{HOST},IP:127.0.0.1"), ("other", f"DNS:{OTHER_HOST}")):
        (folder / f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        _openssl(
            "req",
            *ec,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=folder,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=folder,
        )
    return folder


def png_bytes(size=(80, 40), color=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


class TlsFileServer:
    """HTTPS on 127.0.0.1 that records every TCP connection, the SNI name of every handshake
    and the Host header of every request; answers a PNG, or a redirect when ``redirect`` is set."""

    def __init__(self, certificates, name="server", body=None):
        self.body = body if body is not None else png_bytes()
        self.redirect: str | None = None
        self.connections = 0
        self.sni: list[str | None] = []
        self.hosts: list[str] = []
        self.paths: list[str] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificates / f"{name}.pem", certificates / f"{name}.key")
        context.sni_callback = lambda sslobj, server_name, ctx: self.sni.append(server_name)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                fake.hosts.append(self.headers.get("Host", ""))
                fake.paths.append(self.path)
                if fake.redirect:
                    self.send_response(302)
                    self.send_header("Location", fake.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

        class Server(ThreadingHTTPServer):
            def get_request(self):
                sock, address = self.socket.accept()
                fake.connections += 1
                return context.wrap_socket(sock, server_side=True), address

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


class DripServer:
    """Plain HTTP on 127.0.0.1 that sends its answer one byte every ``interval`` seconds,
    either inside the body (``phase="body"``) or already in the headers (``"headers"``).
    ``finished`` tells whether it got to send the whole answer: a client that gave up at
    its deadline closed the connection long before."""

    def __init__(self, phase="body", interval=0.2, length=60):
        self.finished = threading.Event()
        self.started = threading.Event()
        self.ended = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                fake.started.set()
                body = b"x" * length
                head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {length}\r\n\r\n"
                try:
                    if phase == "headers":
                        slow, fast = head.encode(), body
                    else:
                        self.wfile.write(head.encode())
                        slow, fast = body, b""
                    for index in range(len(slow)):
                        self.wfile.write(slow[index : index + 1])
                        time.sleep(interval)
                    self.wfile.write(fast)
                    fake.finished.set()
                except OSError:  # the client hung up: what the test expects
                    pass
                finally:
                    fake.ended.set()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


class FlippingResolver:
    """Answers the checked address first and another one afterwards (DNS rebinding)."""

    def __init__(self, first="127.0.0.1", then="127.0.0.2", names=(HOST,)):
        self.first, self.then, self.names = first, then, set(names)
        self.lookups: list[str] = []

    def __call__(self, host, port):
        self.lookups.append(host)
        if host not in self.names:
            raise AssertionError(f"unexpected lookup of {host}")
        return [ipaddress.ip_address(self.first if len(self.lookups) == 1 else self.then)]


def only_loopback_one(address) -> bool:
    return str(address) == "127.0.0.1"


# Item 4: the parser differential, end to end through the fake Upsampler --------------------


@pytest.fixture
def upsampler():
    with FakeUpsampler(api_key="k") as server:
        settings = server.smi_settings(
            ALLOW_DUMMY_PAYMENTS=True, PUBLIC_BASE_URL="http://testserver"
        )
        settings["UPSCALER"]["OPTIONS"]["TIMEOUT"] = 5
        with override_settings(WAGTAIL_SMI=settings, ADMINS=[("Ops", "ops@example.com")]):
            yield server


def test_url_with_a_backslash_and_userinfo_never_reaches_the_loopback_resource(
    upsampler,
    make_job,
    make_image,
    settings,
    certificates,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    """``https://127.0.0.1:PORT\\@8.8.8.8/../x``: one parser sees 8.8.8.8, another connects to
    127.0.0.1. The loopback server here would hand out a perfectly valid result (a trusted
    certificate for 127.0.0.1, an image of the ordered size), so only the guard stops it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates / "ca.pem"))
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    with TlsFileServer(certificates) as loopback:
        upsampler.result_url = f"https://127.0.0.1:{loopback.port}\\@8.8.8.8/../x"
        job = make_job(
            "paid",
            image=make_image(20, 10),
            email="buyer@example.com",
            paid_at=timezone.now(),
            payment_provider="dummy",
        )
        with django_capture_on_commit_callbacks(execute=True):
            queue.enqueue_processing(job.pk)
        PurchaseJob.objects.filter(pk=job.pk).update(
            next_attempt_at=timezone.now() - maintenance.OVERDUE_AFTER
        )
        with django_capture_on_commit_callbacks(execute=True):
            maintenance.sweep()

    job.refresh_from_db()
    assert loopback.connections == 0
    assert job.status == "refunded"
    assert not job.result_path
    assert "backslash" in describe(job.events.get(to_status="failed"))
    assert all("/smi/download/" not in message.body for message in mail.outbox)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8398\\@8.8.8.8/../x",
        "https://8.8.8.8\\@127.0.0.1/x",
        "https://user@8.8.8.8/x",
        "https://8.8.8.8:443@127.0.0.1/x",
        "https://8.8.8.8/x\ty",
        "https://8.8.8.8/x y",
        "https://8.8.8.8/\x00",
        "https://8.8.8.8\u3000/x",
        "https://example.com%2F@127.0.0.1/x",
        "https://127.1/x",
        "https://0x7f.1/x",
        "https://2130706433/x",
        "https://[fe80::1%25eth0]/x",
        "https://ex\u00e4mple.com/\u00fcber",
        "https://xn--/x",
        "https://\u2603\ufe0f\u200d.example/x",
    ],
)
def test_urls_that_parsers_read_differently_are_refused(url, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    with pytest.raises(ResultRejected):
        check_result_url(url)


def test_non_ascii_host_names_are_idna_encoded_before_anything_else(settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    looked_up = []

    def resolver(host, port):
        looked_up.append((host, port))
        return [ipaddress.ip_address("8.8.8.8")]

    target, addresses = fetching.result_fetcher(resolver=resolver).check(
        "https://B\u00fccher.Example:8443/a%20b?c=1#frag"
    )
    assert looked_up == [("xn--bcher-kva.example", 8443)]
    assert target.url == "https://xn--bcher-kva.example:8443/a%20b?c=1"
    assert [str(a) for a in addresses] == ["8.8.8.8"]


# Item 4: the address policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::808:808",  # NAT64, even of a public address: the translator is not ours to judge
        "64:ff9b:1::1",
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:808:808::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fd12:3456::1",  # unique local
        "2001:db8::1",
        "3fff::1",
        "::ffff:127.0.0.1",  # IPv4-mapped: judged by its IPv4 address
        "::ffff:10.1.2.3",
        "::127.0.0.1",  # IPv4-compatible
        "fec0::1",
        "fe80::1",
        "::1",
        "100.64.0.1",
        "192.0.0.8",
        "224.0.0.1",
        "0.0.0.0",
    ],
)
def test_special_and_private_ranges_are_refused(address, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(ResultRejected, match="non-public"):
        check_result_url(f"https://{host}/result.png")


@pytest.mark.parametrize("address", ["8.8.8.8", "::ffff:8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass_the_policy(address, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    host = f"[{address}]" if ":" in address else address
    check_result_url(f"https://{host}/result.png")


def test_a_name_with_one_private_address_among_public_ones_is_refused(settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}

    def resolver(host, port):
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.7")]

    with pytest.raises(ResultRejected, match="10.0.0.7"):
        check_result_url(
            f"https://{HOST}/x.png", fetcher=fetching.result_fetcher(resolver=resolver)
        )


# Item 4: the connection goes to the checked address, TLS verified for the name -------------


def test_download_connects_to_the_checked_address_with_the_host_name_for_tls(
    certificates, settings
):
    """The name resolves to 127.0.0.1 once, then to 127.0.0.2 (which the policy refuses and
    where nothing listens): a client that looks the name up again to connect would fail."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    resolver = FlippingResolver()
    fetcher = fetching.result_fetcher(
        resolver=resolver, policy=only_loopback_one, ca_file=str(certificates / "ca.pem")
    )
    with TlsFileServer(certificates) as server:
        path = fetching.fetch_result(
            f"https://{HOST}:{server.port}/files/r.png?sig=1", fetcher=fetcher
        )
    try:
        assert path.read_bytes() == server.body
    finally:
        path.unlink()
    assert resolver.lookups == [HOST]
    assert server.connections == 1
    assert server.sni == [HOST]
    assert server.hosts == [f"{HOST}:{server.port}"]
    assert server.paths == ["/files/r.png?sig=1"]


def test_certificate_for_another_name_is_not_accepted(certificates, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    fetcher = fetching.result_fetcher(
        resolver=FlippingResolver(), policy=only_loopback_one, ca_file=str(certificates / "ca.pem")
    )
    with TlsFileServer(certificates, name="other") as server:
        with pytest.raises(RetryableUpscalerError, match="SSL|Certificate"):
            fetching.fetch_result(f"https://{HOST}:{server.port}/r.png", fetcher=fetcher)
    assert server.sni == [HOST]
    assert server.hosts == []  # no request was sent over the unverified connection


def test_certificates_are_verified_against_the_public_roots_by_default(certificates, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    fetcher = fetching.result_fetcher(resolver=FlippingResolver(), policy=only_loopback_one)
    with TlsFileServer(certificates) as server:
        with pytest.raises(RetryableUpscalerError):
            fetching.fetch_result(f"https://{HOST}:{server.port}/r.png", fetcher=fetcher)
    assert server.hosts == []


@pytest.mark.parametrize(
    "location",
    [
        f"https://{OTHER_HOST}:{{port}}/internal",  # resolves to a refused address
        "https://127.0.0.2:{port}/internal",
        "https://127.0.0.1:{port}\\@8.8.8.8/",
        "http://127.0.0.1:{port}/plain",
    ],
)
def test_every_redirect_hop_is_checked_like_the_first(location, certificates, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}

    def resolver(host, port):
        return [ipaddress.ip_address({HOST: "127.0.0.1", OTHER_HOST: "127.0.0.3"}[host])]

    fetcher = fetching.result_fetcher(
        resolver=resolver, policy=only_loopback_one, ca_file=str(certificates / "ca.pem")
    )
    with TlsFileServer(certificates) as server:
        server.redirect = location.format(port=server.port)
        with pytest.raises(ResultRejected):
            fetching.fetch_result(f"https://{HOST}:{server.port}/start", fetcher=fetcher)
    assert server.paths == ["/start"]


def test_a_redirect_to_an_allowed_address_is_followed(certificates, settings):
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "ALLOW_PRIVATE_URLS": False}
    fetcher = fetching.result_fetcher(
        resolver=lambda host, port: [ipaddress.ip_address("127.0.0.1")],
        policy=only_loopback_one,
        ca_file=str(certificates / "ca.pem"),
    )
    with TlsFileServer(certificates) as first, TlsFileServer(certificates) as second:
        first.redirect = f"https://{HOST}:{second.port}/final.png"
        path = fetching.fetch_result(f"https://{HOST}:{first.port}/start", fetcher=fetcher)
    path.unlink()
    assert second.paths == ["/final.png"] and second.sni == [HOST]


# Item 5: one deadline for the whole download -----------------------------------------------


@pytest.mark.parametrize("phase", ["body", "headers"])
def test_a_server_dripping_bytes_cannot_outlast_the_download_deadline(phase, settings):
    """One byte every 0.2 s for 60 bytes (12 s) against a 1 s limit: every single read is
    quick, so only a deadline for the whole download ends it."""
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "ALLOW_PRIVATE_URLS": True,
        "FETCH_TIMEOUT_SECONDS": 1,
    }
    before = set(fetching.temp_dir().iterdir())
    with DripServer(phase=phase) as server:
        with pytest.raises(RetryableUpscalerError, match="took too long"):
            fetching.fetch_result(f"http://127.0.0.1:{server.port}/slow.png")
        assert server.started.is_set()
        server.ended.wait(30)  # the server notices the hang-up at its next byte
        assert not server.finished.is_set()
    assert not [
        p for p in set(fetching.temp_dir().iterdir()) - before if p.name.startswith("result-")
    ]
