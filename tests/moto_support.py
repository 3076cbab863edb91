"""A local S3 server for the tests: moto in server mode, in a process of its own.

Object storage is reached over HTTP exactly as in production (django-storages → boto3 →
an S3 endpoint); only the endpoint is local. ``SMI_TEST_S3=1`` (tests/settings.py) keeps
the whole suite's delivered files there; the ``s3`` fixture gives one test fresh buckets
for originals and delivered files, with or without that switch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # noqa: S105 - moto accepts any credentials
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_options(endpoint: str, bucket: str, **extra) -> dict:
    """The django-storages S3 options for a bucket of the local server."""
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "region_name": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "addressing_style": "path",
        "signature_version": "s3v4",
        "file_overwrite": False,
        **extra,
    }


def s3_storage(endpoint: str, bucket: str, **extra) -> dict:
    """A STORAGES entry for a bucket of the local server."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": s3_options(endpoint, bucket, **extra),
    }


def s3_client(endpoint: str):
    # Imported when a test looks into a bucket: the settings module imports this one early.
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


class MotoServer:
    """``python -m moto.server`` on a loopback port, until ``stop``."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def create_bucket(self, name: str) -> None:
        s3_client(self.endpoint).create_bucket(Bucket=name)


@pytest.fixture(scope="session")
def moto_server():
    """The session's S3 server: on the port tests/settings.py chose when the whole suite
    keeps its files in S3 (``SMI_TEST_S3=1``), on any free port otherwise."""
    from django.conf import settings  # read at fixture time, once pytest-django set it up

    endpoint = getattr(settings, "SMI_TEST_S3_ENDPOINT", None)
    server = MotoServer(int(endpoint.rsplit(":", 1)[1]) if endpoint else None).start()
    if endpoint:
        server.create_bucket(settings.STORAGES["smi_private"]["OPTIONS"]["bucket_name"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _suite_on_s3(request):
    """With ``SMI_TEST_S3=1`` the private storage is a bucket of the session's server:
    start it before the first test needs it."""
    from django.conf import settings  # read at fixture time, once pytest-django set it up

    if getattr(settings, "SMI_TEST_S3_ENDPOINT", None):
        request.getfixturevalue("moto_server")


@dataclass
class Buckets:
    """A test's two buckets, and a boto3 client to look into them directly."""

    client: Any
    endpoint: str
    media: str
    private: str

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        answer = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", []))


@pytest.fixture
def s3(moto_server, settings) -> Buckets:
    """This test's originals (Wagtail's default storage) and delivered files (the private
    storage) in two fresh buckets of the local S3 server."""
    media, private = f"media-{uuid.uuid4().hex[:12]}", f"private-{uuid.uuid4().hex[:12]}"
    for bucket in (media, private):
        moto_server.create_bucket(bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(moto_server.endpoint, media),
        "smi_private": s3_storage(
            moto_server.endpoint, private, default_acl="private", querystring_auth=True
        ),
    }
    return Buckets(s3_client(moto_server.endpoint), moto_server.endpoint, media, private)
