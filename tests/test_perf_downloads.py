"""A download's cost: one SQL statement on PostgreSQL (find the order, check it, count and
log the download), ranges handed to the server's sendfile, and the record kept exact on the
rare paths (a missing file, an unsatisfiable range, concurrent downloads at the limit)."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.pages_support import PAYLOAD
from wagtail_smi import downloads, storage
from wagtail_smi.downloads import FileRange
from wagtail_smi.models import DownloadEvent, PurchaseJob
from wagtail_smi.operations.downloads import claim_download

ON_POSTGRESQL = connection.vendor == "postgresql"
# Elsewhere: find the order, count the download, log it (three statements; SQLite has no
# data-modifying WITH, so the three cannot be one).
WARM_DOWNLOAD_QUERIES = 1 if ON_POSTGRESQL else 3


@pytest.fixture
def delivered(delivered, settings):
    """``pages_support``'s delivered order, with rate limits out of the way of counting."""
    settings.WAGTAIL_SMI = {**settings.WAGTAIL_SMI, "RATE_LIMITS_ENABLED": False}
    return delivered


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_a_second_download_of_the_same_file_costs_one_query(client, delivered):
    job, token = delivered(download_limit=5)
    assert client.get(f"/smi/download/{token}").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/smi/download/{token}")
        content = body(response)

    assert response.status_code == 200 and content == PAYLOAD
    assert len(queries) == WARM_DOWNLOAD_QUERIES, [q["sql"] for q in queries]
    job.refresh_from_db()
    assert job.download_count == 2
    assert DownloadEvent.objects.filter(job=job, counted=True).count() == 2


@pytest.mark.django_db
@pytest.mark.skipif(not ON_POSTGRESQL, reason="one statement needs PostgreSQL's WITH ... UPDATE")
def test_a_resume_and_the_order_page_button_cost_one_query_too(client, delivered):
    job, token = delivered(download_limit=1)
    assert client.get(f"/smi/download/{token}").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        resumed = client.get(f"/smi/download/{token}", HTTP_RANGE="bytes=100-")
        resumed_body = body(resumed)
        used_up = client.get(
            f"/smi/orders/{job.pk}/download/?key={job.access_key}",
            HTTP_ACCEPT="application/json",
        )

    assert resumed.status_code == 206 and resumed_body == PAYLOAD[100:]
    assert used_up.status_code == 410 and used_up.json()["error"] == "limit_reached"
    assert len(queries) == 2, [q["sql"] for q in queries]
    assert list(DownloadEvent.objects.filter(job=job).values_list("counted", "ranged")) == [
        (False, True),
        (True, False),
    ]


@pytest.mark.django_db
def test_a_wrong_order_key_or_a_malformed_token_is_refused_without_a_query(delivered):
    job, _token = delivered()
    with CaptureQueriesContext(connection) as queries:
        wrong_key = claim_download(client="c", job_id=job.pk, key="0" * 40)
        malformed = claim_download(client="c", token="*" * 64)
    assert wrong_key.job is None and wrong_key.refusal.code == "not_found"
    assert malformed.job is None and malformed.refusal.code == "not_found"
    assert len(queries) == 0  # (a 404 page then costs Wagtail's redirect lookup, not ours)


@pytest.mark.django_db
def test_head_finds_and_checks_in_one_query_and_records_nothing(client, delivered):
    job, token = delivered()
    with CaptureQueriesContext(connection) as queries:
        response = client.head(f"/smi/download/{token}")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert len(queries) == 1
    assert not DownloadEvent.objects.filter(job=job).exists()


@pytest.mark.django_db
def test_an_unsatisfiable_range_or_a_missing_file_takes_the_download_back(client, delivered):
    job, token = delivered(download_limit=1)

    unsatisfiable = client.get(f"/smi/download/{token}", HTTP_RANGE=f"bytes={len(PAYLOAD)}-")
    storage.private_storage().delete(job.result_path)
    missing = client.get(f"/smi/download/{token}", HTTP_ACCEPT="application/json")

    assert unsatisfiable.status_code == 416
    assert missing.status_code == 410 and missing.json()["error"] == "missing"
    job.refresh_from_db()
    assert job.download_count == 0
    assert not DownloadEvent.objects.filter(job=job).exists()


@pytest.mark.django_db
def test_under_gunicorn_a_range_offers_the_file_to_sendfile_at_its_start(rf, delivered):
    _job, token = delivered()
    # The view itself: the test client replaces the response's file with an iterator.
    request = rf.get(
        f"/smi/download/{token}", HTTP_RANGE="bytes=1000-4999", SERVER_SOFTWARE="gunicorn/27.0.1"
    )
    response = downloads.download(request, token)
    assert response.status_code == 206 and response["Content-Length"] == "4000"
    wrapped = response.file_to_stream
    assert isinstance(wrapped, FileRange)

    # What gunicorn does with it (gunicorn/http/wsgi.py, Response.sendfile): send
    # Content-Length bytes from the descriptor's position, with the kernel's sendfile.
    sender, receiver = socket.socketpair()
    try:
        offset = os.lseek(wrapped.fileno(), 0, os.SEEK_CUR)
        sender.sendfile(wrapped, offset=offset, count=int(response["Content-Length"]))
        sender.close()
        received = b"".join(iter(lambda: receiver.recv(65536), b""))
    finally:
        receiver.close()
        response.close()
    assert received == PAYLOAD[1000:5000]


@pytest.mark.django_db
def test_elsewhere_a_range_is_read_in_blocks_and_stops_at_its_end(rf, delivered):
    _job, token = delivered()
    request = rf.get(f"/smi/download/{token}", HTTP_RANGE="bytes=1000-4999")
    response = downloads.download(request, token)
    assert isinstance(response.file_to_stream, FileRange)
    assert not hasattr(response.file_to_stream, "fileno")
    assert body(response) == PAYLOAD[1000:5000]
    response.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not ON_POSTGRESQL, reason="concurrent writers need PostgreSQL")
def test_concurrent_downloads_never_exceed_the_limit(delivered):
    job, token = delivered(download_limit=3)
    statuses: list[int] = []
    start = threading.Barrier(12)

    def fetch(n: int) -> None:
        try:
            start.wait()
            response = Client().get(
                f"/smi/download/{token}", REMOTE_ADDR=f"198.51.100.{n}", HTTP_ACCEPT="image/png"
            )
            body(response)
            response.close()
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] * 3 + [410] * 9
    assert PurchaseJob.objects.get(pk=job.pk).download_count == 3
    assert DownloadEvent.objects.filter(job=job, counted=True).count() == 3
