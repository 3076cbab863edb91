"""The pipeline's cost per order (issue 15): SQL statements from paid to delivered, and one
kept-alive HTTP session per worker for Upsampler's API.

Statements are counted with ``CaptureQueriesContext`` (counts, never timings). Inside a
test every transaction is a savepoint; those are left out of the counts, and the writes to
the order's row are counted apart, since each is a lock taken and, outside a test, a commit.
"""

from __future__ import annotations

import io
import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from tests.upsampler_server import FakeUpsampler
from wagtail_smi import fetching
from wagtail_smi.models import EventCode, JobEvent, PurchaseJob, SmiSiteSettings
from wagtail_smi.operations import processing
from wagtail_smi.upscalers import RetryableUpscalerError, UpscaleRequest
from wagtail_smi.upscalers import upsampler as upsampler_module
from wagtail_smi.upscalers.upsampler import UpsamplerUpscaler, api_session

pytestmark = pytest.mark.django_db

LOCAL = {
    "UPSCALER": {"CLASS": "wagtail_smi.upscalers.local.LocalUpscaler", "OPTIONS": {}},
    "ALLOW_DUMMY_PAYMENTS": True,
    "PUBLIC_BASE_URL": "http://testserver",
}
JOB_TABLE = '"wagtail_smi_purchasejob"'


class Statements:
    """What one step sent to the database, savepoints left out."""

    def __init__(self, captured: CaptureQueriesContext):
        self.sql = [
            query["sql"]
            for query in captured.captured_queries
            if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        ]

    def __len__(self) -> int:
        return len(self.sql)

    @property
    def job_writes(self) -> int:
        return sum(1 for sql in self.sql if sql.startswith(f"UPDATE {JOB_TABLE}"))


def run_step(job_id, capture_on_commit) -> Statements:
    with CaptureQueriesContext(connection) as captured, capture_on_commit(execute=True):
        processing.process_job(job_id)
    return Statements(captured)


@pytest.fixture
def paid_order(make_job, make_image, site):
    SmiSiteSettings.for_site(site)  # the shop's settings exist, as they do once it sells

    def factory():
        return make_job(
            "paid",
            image=make_image(20, 10, title="Harbour"),
            paid_at=timezone.now(),
            email="buyer@example.com",
            payment_provider="dummy",
        )

    return factory


@pytest.fixture
def upsampler():
    with FakeUpsampler(api_key="k") as server:
        server.result_size = (80, 40)
        settings = server.smi_settings(
            ALLOW_DUMMY_PAYMENTS=True, PUBLIC_BASE_URL="http://testserver"
        )
        with override_settings(WAGTAIL_SMI=settings):
            yield server


def due_now(job) -> None:
    PurchaseJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())


# --- statements per order --------------------------------------------------------------------


def test_a_local_upscale_from_paid_to_delivered_stays_within_its_statements(
    paid_order, django_capture_on_commit_callbacks
):
    job = paid_order()
    with override_settings(WAGTAIL_SMI=LOCAL):
        step = run_step(job.pk, django_capture_on_commit_callbacks)

    job.refresh_from_db()
    assert job.status == "completed" and job.result_path
    assert step.job_writes == 3  # claimed, delivered, the email's time
    assert len(step) <= 19, "\n".join(step.sql)


def test_a_submission_is_stamped_in_the_claim_s_own_write(
    upsampler, paid_order, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = paid_order()
    step = run_step(job.pk, django_capture_on_commit_callbacks)

    job.refresh_from_db()
    assert len(upsampler.submits) == 1
    assert job.status == "processing" and job.upscaler_job_id in upsampler.jobs
    assert job.upscaler_submitted_at is not None
    claimed = JobEvent.objects.get(job=job, to_status="processing").created_at
    assert abs((job.upscaler_submitted_at - claimed).total_seconds()) < 1
    assert step.job_writes == 2  # the claim with the stamp, then Upsampler's job id
    assert len(step) <= 10, "\n".join(step.sql)


def test_a_poll_that_finds_the_result_saves_what_it_saw_with_the_delivery(
    upsampler, paid_order, django_capture_on_commit_callbacks
):
    job = paid_order()
    run_step(job.pk, django_capture_on_commit_callbacks)
    due_now(job)
    step = run_step(job.pk, django_capture_on_commit_callbacks)

    job.refresh_from_db()
    assert job.status == "completed"
    assert job.upscaler_status == "SUCCESS" and job.last_polled_at is not None
    assert job.upscaler_credits == upsampler.credit_cost
    assert step.job_writes == 3  # the poll's lease, delivered, the email's time
    assert len(step) <= 16, "\n".join(step.sql)


def test_a_poll_that_finds_the_job_pending_saves_it_with_the_next_poll(
    upsampler, paid_order, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = paid_order()
    run_step(job.pk, django_capture_on_commit_callbacks)
    due_now(job)
    step = run_step(job.pk, django_capture_on_commit_callbacks)

    job.refresh_from_db()
    assert job.status == "processing" and job.upscaler_status == "IN_PROGRESS"
    assert job.last_polled_at is not None and job.next_attempt_at > timezone.now()
    assert step.job_writes == 2  # the poll's lease, then what it saw with the next poll


def test_a_poll_that_finds_the_job_failed_saves_it_with_the_failure(
    upsampler, paid_order, django_capture_on_commit_callbacks
):
    upsampler.pending_polls = None
    job = paid_order()
    run_step(job.pk, django_capture_on_commit_callbacks)
    upsampler.status_failed = True
    due_now(job)
    with CaptureQueriesContext(connection) as captured:
        processing.process_job(job.pk)  # the refund waits for the commit, not run here

    job.refresh_from_db()
    assert job.status == "failed" and job.upscaler_status == "FAILED"
    assert job.last_polled_at is not None
    assert Statements(captured).job_writes == 2  # the poll's lease, then the failure
    assert JobEvent.objects.filter(job=job, code=EventCode.PROCESSING_FAILED).count() == 1


# --- one HTTP session per worker ---------------------------------------------------------------


class KeptAliveServer:
    """A local HTTP/1.1 server that keeps connections open (``server``, ``thread``: set by
    the subclass), served for the length of a ``with`` block."""

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class KeepAliveUpsampler(KeptAliveServer):
    """An HTTP/1.1 stand-in for Upsampler that keeps connections open and remembers which
    connection each request came on. ``answers`` lists status codes to answer first."""

    def __init__(self):
        self.requests: list[tuple[str, tuple]] = []
        self.answers: list[int] = []
        self.close_after_answer = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                fake.requests.append((self.command, self.client_address))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status = fake.answers.pop(0) if fake.answers else 200
                body = json.dumps(
                    {"id": "up-1", "status": "SUCCESS" if self.command == "GET" else "IN_QUEUE"}
                    if status == 200
                    else {"error": "busy"}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if fake.close_after_answer:
                    self.close_connection = True  # dropped without a word, as idle ones are

            do_GET = do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def client(self) -> UpsamplerUpscaler:
        host, port = self.server.server_address[:2]
        return UpsamplerUpscaler({"API_KEY": "k", "API_BASE": f"http://{host}:{port}/api/v1"})

    def connections(self, method: str | None = None) -> set:
        return {address for verb, address in self.requests if method in (None, verb)}


def request() -> UpscaleRequest:
    return UpscaleRequest(reference="r", factor=4, output_width=4, output_height=4)


def test_a_worker_reuses_one_connection_for_its_calls():
    with KeepAliveUpsampler() as server:
        client = server.client()
        client.submit(request())
        client.status("up-1")
        client.status("up-1")
    assert len(server.requests) == 3
    assert len(server.connections()) == 1


def test_each_thread_and_each_forked_process_gets_its_own_session(monkeypatch):
    mine = api_session()
    assert api_session() is mine
    seen = []
    thread = threading.Thread(target=lambda: seen.append(api_session()))
    thread.start()
    thread.join()
    assert seen[0] is not mine
    monkeypatch.setattr(upsampler_module.os, "getpid", lambda: -1)  # as in a forked worker
    assert api_session() is not mine


def test_a_status_poll_is_tried_once_more_after_a_server_error():
    with KeepAliveUpsampler() as server:
        server.answers = [503]
        status = server.client().status("up-1")
    assert status.status == "SUCCESS"
    assert [verb for verb, _address in server.requests] == ["GET", "GET"]


@pytest.mark.parametrize("answer", [500, 502, 503])
def test_a_submission_is_never_sent_twice_by_the_session(answer):
    with KeepAliveUpsampler() as server:
        server.answers = [answer]
        with pytest.raises(RetryableUpscalerError):
            server.client().submit(request())
    assert [verb for verb, _address in server.requests] == ["POST"]


def test_a_submission_after_the_idle_connection_was_dropped_goes_out_once_on_a_new_one():
    with KeepAliveUpsampler() as server:
        server.close_after_answer = True
        client = server.client()
        client.status("up-1")
        time.sleep(0.2)  # the server has closed the connection meanwhile
        result = client.submit(request())
    assert result.external_id == "up-1"
    assert [verb for verb, _address in server.requests] == ["GET", "POST"]
    assert len(server.connections()) == 2


# --- kept-alive result downloads -------------------------------------------------------------


class KeepAliveFiles(KeptAliveServer):
    """An HTTP/1.1 file server that keeps connections open, for results."""

    def __init__(self, size=(8, 8)):
        buffer = io.BytesIO()
        Image.new("RGB", size, (10, 20, 30)).save(buffer, format="PNG")
        self.body = buffer.getvalue()
        self.requests: list[tuple] = []
        self.close_after_answer = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                fake.requests.append(self.client_address)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)
                if fake.close_after_answer:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://localhost:{self.server.server_address[1]}/files/{name}.png"


def local_fetcher(resolver=None) -> fetching.ResultFetcher:
    return fetching.ResultFetcher(
        max_bytes=1_000_000,
        time_limit=10,
        policy=fetching.any_address,
        resolver=resolver or (lambda host, port: [ipaddress.ip_address("127.0.0.1")]),
        schemes=("http",),
    )


def fetch(fetcher, url, tmp_path) -> bytes:
    path = fetcher.fetch(url, tmp_path)
    try:
        return path.read_bytes()
    finally:
        path.unlink()


def test_results_of_one_worker_come_over_one_kept_alive_connection(tmp_path):
    with KeepAliveFiles() as files:
        fetcher = local_fetcher()
        first = fetch(fetcher, files.url("a"), tmp_path)
        second = fetch(local_fetcher(), files.url("b"), tmp_path)
    assert first == second == files.body
    assert len(files.requests) == 2 and len(set(files.requests)) == 1


def test_a_kept_connection_is_not_used_for_a_name_that_now_resolves_elsewhere(tmp_path):
    answers = iter(["127.0.0.1", "127.0.0.2"])  # rebound between two results

    def resolver(host, port):
        return [ipaddress.ip_address(next(answers))]

    with KeepAliveFiles() as files:
        fetcher = local_fetcher(resolver)
        fetch(fetcher, files.url("a"), tmp_path)
        with pytest.raises(RetryableUpscalerError):
            fetch(fetcher, files.url("b"), tmp_path)  # 127.0.0.2: nobody listens there
    assert len(files.requests) == 1


def test_a_kept_connection_the_server_closed_is_replaced(tmp_path):
    with KeepAliveFiles() as files:
        files.close_after_answer = True
        fetch(local_fetcher(), files.url("a"), tmp_path)
        time.sleep(0.2)
        assert fetch(local_fetcher(), files.url("b"), tmp_path) == files.body
    assert len(files.requests) == 2 and len(set(files.requests)) == 2
