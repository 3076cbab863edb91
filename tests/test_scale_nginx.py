"""Downloads through nginx by ``X-Accel-Redirect``, with the repository's own config
(deploy/nginx/wagtail-smi.conf) rendered and served by Debian's nginx in front of a live
Django server.

The private storage here refuses to open a file, so a download that arrives whole proves
nginx sent it from disk and Django never read it. nginx runs as an unprivileged process
(``nobody`` when the tests run as root) from a folder of its own, on loopback ports.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from tests.conftest import NGINX
from tests.moto_support import free_port
from wagtail_smi import storage
from wagtail_smi.models import DownloadEvent
from wagtail_smi.operations import delivery as delivery_ops
from wagtail_smi.utils import hash_ip

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx" / "wagtail-smi.conf"
PAYLOAD = bytes(range(256)) * 300  # 76800 bytes

pytestmark = [pytest.mark.nginx, pytest.mark.django_db(transaction=True)]


class UnopenableStorage(FileSystemStorage):
    """A local folder whose files the site may store, measure and delete, never read."""

    def open(self, name, mode="rb"):
        if "r" in mode:
            raise AssertionError(f"Django read {name}: nginx should have sent it")
        return super().open(name, mode)


def render(template: str, values: dict[str, str]) -> str:
    text = template
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    directives = [line.split("#", 1)[0] for line in text.splitlines()]
    leftover = [word for line in directives for word in line.split() if word.count("@") >= 2]
    assert not leftover, f"placeholders left in the nginx config: {leftover}"
    return text


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx did not listen: {log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def nginx_folder():
    """A world-readable folder (pytest's own are private to root): the site's files in
    ``private`` and ``media``, nginx's runtime files in ``run``, owned by the user nginx
    runs as."""
    folder = Path(tempfile.mkdtemp(prefix="smi-nginx-"))
    folder.chmod(0o755)
    for name in ("private", "media", "static", "run"):
        (folder / name).mkdir(mode=0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def nginx(live_server, nginx_folder):
    """Debian's nginx with deploy/nginx/wagtail-smi.conf, proxying to ``live_server``;
    yields the HTTPS base URL and the certificate to trust."""
    run = nginx_folder / "run"
    certificate, key = run / "tls.crt", run / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o644)  # readable by the unprivileged nginx (a throwaway key)
    http_port, https_port = free_port(), free_port()
    site = render(
        TEMPLATE.read_text(),
        {
            "UPSTREAM": f"127.0.0.1:{live_server.url.rsplit(':', 1)[1]}",
            "HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "HTTPS_LISTEN": f"127.0.0.1:{https_port}",
            "SERVER_NAME": "127.0.0.1",
            "TLS_CERTIFICATE": str(certificate),
            "TLS_CERTIFICATE_KEY": str(key),
            "STATIC_ROOT": str(nginx_folder / "static"),
            "MEDIA_ROOT": str(nginx_folder / "media"),
            "PRIVATE_ROOT": str(nginx_folder / "private"),
        },
    )
    (run / "wagtail-smi.conf").write_text(site)
    # What /etc/nginx/nginx.conf gives the site's file, with every path in this folder.
    temp_paths = "\n".join(
        f"    {kind}_temp_path {run / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    (run / "nginx.conf").write_text(
        f"""daemon off;
worker_processes 1;
pid {run / "nginx.pid"};
error_log {run / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {run / "access.log"};
    sendfile on;
{temp_paths}
    uwsgi_temp_path {run / "uwsgi"};
    scgi_temp_path {run / "scgi"};
    include {run / "wagtail-smi.conf"};
}}
"""
    )
    user = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in run.iterdir():
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        os.chown(run, nobody.pw_uid, nobody.pw_gid)
        user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    command = [NGINX, "-p", str(run), "-c", str(run / "nginx.conf"), "-e", str(run / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, **user)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **user,
    )
    try:
        wait_for_port(https_port, process, run / "error.log")
        yield {
            "https": f"https://127.0.0.1:{https_port}",
            "http": f"http://127.0.0.1:{http_port}",
            "verify": str(certificate),
            "log": run / "error.log",
        }
    finally:
        os.killpg(process.pid, signal.SIGQUIT)  # graceful stop
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def delivered(settings, nginx_folder, make_job, tmp_path, wagtail_baseline):
    """A completed order whose file is in the private folder nginx serves, and its token,
    with the site set up as deploy/nginx/wagtail-smi.conf says."""
    settings.STORAGES = {
        **settings.STORAGES,
        "smi_private": {
            "BACKEND": f"{__name__}.UnopenableStorage",
            "OPTIONS": {"location": str(nginx_folder / "private"), "base_url": None},
        },
    }
    settings.WAGTAIL_SMI = {
        **settings.WAGTAIL_SMI,
        "DOWNLOAD_SERVE": "x-accel-redirect",
        "X_ACCEL_REDIRECT_PREFIX": "/smi-private/",
        "TRUSTED_PROXIES": 1,
        "RATE_LIMITS_ENABLED": False,
    }
    job = make_job("processing", paid_at=timezone.now(), image_title="Old Mill")
    result = tmp_path / "result.png"
    result.write_bytes(PAYLOAD)
    name, size, content_type = storage.store_result(job, result)
    token, values = delivery_ops.token_fields(job)
    values.update(
        status="completed",
        result_path=name,
        result_size_bytes=size,
        result_content_type=content_type,
    )
    for key, value in values.items():
        setattr(job, key, value)
    job.save()
    return job, token


def test_a_download_through_nginx_is_sent_by_nginx_from_the_private_folder(
    delivered, nginx, live_server
):
    job, token = delivered
    url = f"{nginx['https']}/smi/download/{token}"

    # A visitor's forged X-Forwarded-For is ignored: nginx appends the address it saw.
    response = requests.get(
        url, verify=nginx["verify"], headers={"X-Forwarded-For": "198.51.100.7"}, timeout=20
    )

    assert response.status_code == 200, nginx["log"].read_text()[-2000:]
    assert response.content == PAYLOAD
    assert response.headers["Content-Length"] == str(len(PAYLOAD))
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="old-mill-4x-4000x4000.png"'
    )
    assert response.headers["Cache-Control"] == "no-store, private"
    assert "X-Accel-Redirect" not in response.headers
    [event] = DownloadEvent.objects.filter(job=job)
    assert event.counted and event.ip_hash == hash_ip("127.0.0.1")

    # A resume is served by nginx too, and not counted again.
    part = requests.get(
        url, verify=nginx["verify"], headers={"Range": "bytes=1000-1999"}, timeout=20
    )
    assert part.status_code == 206
    assert part.content == PAYLOAD[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(PAYLOAD)}"
    job.refresh_from_db()
    assert job.download_count == 1

    # What Django itself answered: the header for nginx, and no bytes of the file.
    direct = requests.get(f"{live_server.url}/smi/download/{token}", timeout=20)
    assert direct.status_code == 200
    assert direct.headers["X-Accel-Redirect"] == f"/smi-private/{job.result_path}"
    assert direct.content == b""

    # The security headers of the site's own answer, again on nginx's (it drops them on
    # an X-Accel-Redirect: the internal location sets them), for the whole file and a part.
    security = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-store, private",
    }
    for name, value in security.items():
        assert direct.headers[name] == value, name
        assert response.headers[name] == value, name
        assert part.headers[name] == value, name


def test_the_private_folder_cannot_be_reached_through_nginx_directly(delivered, nginx):
    job, _token = delivered
    for path in (f"/smi-private/{job.result_path}", f"/media/../private/{job.result_path}"):
        response = requests.get(nginx["https"] + path, verify=nginx["verify"], timeout=20)
        assert response.status_code in (400, 404), path
        assert PAYLOAD[:100] not in response.content


def test_plain_http_is_sent_to_https(nginx):
    response = requests.get(nginx["http"] + "/gallery/?x=1", allow_redirects=False, timeout=20)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/gallery/?x=1"
