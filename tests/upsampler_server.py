"""A local stand-in for Upsampler's Precise Upscale API (SPEC §6), for tests.

Standard library only: a ``ThreadingHTTPServer`` on 127.0.0.1 that answers
``POST /api/v1/precise-upscale`` and ``GET /api/v1/status/<id>``, serves result files at
``/files/<id>.<ext>`` and can call the job's webhook back. Failure modes are attributes
the test sets before acting:

- ``submit_error``: ``(http_status, message)`` answered to every submit (final errors);
- ``submit_delay``: seconds to wait before answering a submit that was accepted (the job
  exists and counts): longer than the client's timeout, the answer is lost;
- ``fail_next``: answer this many API requests with HTTP ``fail_status`` (503) first
  (retryable errors: 500, 429...);
- ``status_delay``: seconds to wait before answering a status request (a slow API: longer
  than the client's timeout, it times out);
- ``pending_polls``: status answers ``IN_PROGRESS`` this many times before ``SUCCESS``
  (``None``: never finishes, a slow upscaler);
- ``status_failed``: status answers ``FAILED`` with an error;
- ``status_answer``: ``(http_status, json value)`` answered to every status request (a
  body that is not an object, say);
- ``result_kind``: ``"image"`` (a real PNG of ``result_size``), ``"not_image"``,
  ``"wrong_size"``;
- ``result_fail_next``: answer this many result downloads with HTTP 503 first;
- ``result_cut_next``: send only the first half of this many result downloads (with the
  full ``Content-Length``), then close the connection;
- ``result_hold``: a ``threading.Event``; result downloads send their first half, then
  wait for it before sending the rest (a download in progress, for as long as a test needs);
- ``result_url``: replaces the ``imageUrl`` it reports (an attacker's, an http URL...);
- ``callbacks``: when True the server POSTs the callback to the webhook as soon as a job
  finishes (use with a live server); the payloads are always kept in ``sent_callbacks``
  so a test can deliver them itself through Django's test client.

Every request is recorded in ``requests`` as ``(method, path, headers, json body)``.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

API_PREFIX = "/api/v1"


class FakeUpsampler:
    def __init__(self, api_key: str = "k"):
        self.api_key = api_key
        self.result_size: tuple[int, int] = (8, 8)
        self.submit_error: tuple[int, str] | None = None
        self.submit_delay = 0.0
        self.fail_next = 0
        self.fail_status = 503
        self.status_delay = 0.0
        self.pending_polls: int | None = 0
        self.status_failed = False
        self.status_answer: tuple[int, object] | None = None
        self.result_kind = "image"
        self.result_url: str | None = None
        self.result_fail_next = 0
        self.result_cut_next = 0
        self.result_hold: threading.Event | None = None
        self.callbacks = False
        self.credit_cost = 4
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict, object]] = []
        self.sent_callbacks: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # Lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeUpsampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_base(self) -> str:
        return self.origin + API_PREFIX

    def smi_settings(self, *, api_key: str = "k", **extra) -> dict:
        """A WAGTAIL_SMI dict whose Upsampler backend talks to this server."""
        return {
            "UPSCALER": {
                "CLASS": "wagtail_smi.upscalers.upsampler.UpsamplerUpscaler",
                "OPTIONS": {"API_KEY": api_key, "API_BASE": self.api_base},
            },
            "ALLOW_PRIVATE_URLS": True,
            **extra,
        }

    # What happened -----------------------------------------------------------------------

    def calls(self, method: str, prefix: str) -> list:
        return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]

    @property
    def submits(self) -> list:
        return self.calls("POST", API_PREFIX + "/precise-upscale")

    @property
    def status_calls(self) -> list:
        return self.calls("GET", API_PREFIX + "/status/")

    # Behaviour ---------------------------------------------------------------------------

    def _result_bytes(self) -> tuple[bytes, str]:
        if self.result_kind == "not_image":
            return b"<html>this is not an image</html>" * 10, "text/html"
        width, height = self.result_size
        if self.result_kind == "wrong_size":
            width += 1
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"

    def _status_payload(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        if self.status_failed:
            return {"id": job_id, "status": "FAILED", "error": "Image could not be processed"}
        if self.pending_polls is None or job["polls"] < self.pending_polls:
            job["polls"] += 1
            return {"id": job_id, "status": "IN_PROGRESS"}
        url = self.result_url or f"{self.origin}/files/{job_id}.png"
        return {
            "id": job_id,
            "status": "SUCCESS",
            "imageUrl": url,
            "compressedImageUrl": url,
            "creditCost": self.credit_cost,
        }

    def _send_callback(self, job_id: str) -> None:
        job = self.jobs[job_id]
        payload = self._status_payload_final(job_id)
        self.sent_callbacks.append((job["webhook"], payload))
        if self.callbacks and job["webhook"]:
            request = urllib.request.Request(  # noqa: S310 - a test talking to its own server
                job["webhook"],
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                urllib.request.urlopen(request, timeout=10).read()  # noqa: S310
            except Exception as exc:  # recorded for the test to see
                job["callback_error"] = repr(exc)

    def _status_payload_final(self, job_id: str) -> dict:
        url = self.result_url or f"{self.origin}/files/{job_id}.png"
        if self.status_failed:
            return {"id": job_id, "status": "FAILED", "error": "Image could not be processed"}
        return {"id": job_id, "status": "SUCCESS", "imageUrl": url, "creditCost": self.credit_cost}

    def finish(self, job_id: str | None = None) -> None:
        """The upscaler finishes a job now: status turns SUCCESS and the callback goes out."""
        job_id = job_id or next(iter(self.jobs))
        self.pending_polls = 0
        self._send_callback(job_id)

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _json(self, status: int, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body=None):
                with fake._lock:
                    fake.requests.append(
                        ("GET" if body is None else "POST", self.path, dict(self.headers), body)
                    )

            def _api_guard(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._json(401, {"error": "Invalid API key"})
                    return False
                if fake.fail_next > 0:
                    fake.fail_next -= 1
                    self._json(fake.fail_status, {"error": "Service unavailable"})
                    return False
                return True

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("latin-1")}
                self._record(body)
                if self.path != API_PREFIX + "/precise-upscale":
                    return self._json(404, {"error": "Not found"})
                if not self._api_guard():
                    return None
                if fake.submit_error:
                    status, message = fake.submit_error
                    return self._json(status, {"error": message})
                job_id = uuid.uuid4().hex
                fake.jobs[job_id] = {
                    "polls": 0,
                    "webhook": body.get("webhook", ""),
                    "input": body.get("input"),
                }
                if fake.submit_delay:
                    time.sleep(fake.submit_delay)
                try:
                    self._json(
                        200, {"id": job_id, "status": "IN_QUEUE", "creditCost": fake.credit_cost}
                    )
                except OSError:  # the client gave up waiting: the job exists all the same
                    return None
                if fake.callbacks and fake.pending_polls == 0 and not fake.status_failed:
                    threading.Thread(
                        target=fake._send_callback, args=(job_id,), daemon=True
                    ).start()
                return None

            def do_GET(self):  # noqa: N802
                self._record()
                if self.path.startswith(API_PREFIX + "/status/"):
                    if not self._api_guard():
                        return None
                    job_id = self.path.rsplit("/", 1)[-1]
                    if fake.status_delay:
                        time.sleep(fake.status_delay)
                    if fake.status_answer is not None:
                        return self._json(*fake.status_answer)
                    if job_id not in fake.jobs:
                        return self._json(404, {"error": "Unknown job"})
                    return self._json(200, fake._status_payload(job_id))
                if self.path.startswith("/files/") and fake.result_fail_next > 0:
                    fake.result_fail_next -= 1
                    return self._json(503, {"error": "Try later"})
                if self.path.startswith("/files/"):
                    body, content_type = fake._result_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    cut = fake.result_cut_next > 0
                    if cut:
                        fake.result_cut_next -= 1
                    if cut or fake.result_hold is not None:
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        if cut:
                            self.close_connection = True
                            return None
                        fake.result_hold.wait()
                        body = body[len(body) // 2 :]
                    try:
                        self.wfile.write(body)
                    except OSError:  # the client is gone (a worker killed mid-download)
                        pass
                    return None
                return self._json(404, {"error": "Not found"})

        return Handler
