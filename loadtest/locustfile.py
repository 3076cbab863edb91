"""The load test's clients (locust): browsers asking for prices, and buyers going all the way.

Run by ``loadtest/run.py``, which starts the shop and says where everything is through the
environment. Each simulated client comes through the shop's trusted proxy with an address
of its own (``X-Forwarded-For``, from the documentation ranges: only a header, nothing is
sent there), so the shop's per-client rate limits apply as they would to 200 people.

- ``Greedy``: two clients behind one address asking for prices without pause: the rate
  limit answers them 429, and nothing else may go wrong.
- ``Browser``: the CSRF token, prices, clicks, and a status page of an order that does
  not exist (404).
- ``Buyer``: prices, a click, a checkout on the local Stripe, the payment's webhook
  delivered three times at once (as Stripe does when it retries while the first is still
  being handled) and once more later; then the order page polled until the file is ready,
  the download, and for one order in four a refund from the Stripe dashboard, its webhook
  delivered twice at once.

Every answer is counted by status (``SMI_LOAD_STATS``, written when the run ends). The run
stops itself after ``SMI_LOAD_MAX_REQUESTS`` requests, or when locust's ``--run-time`` is up.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import gevent
import requests
from locust import HttpUser, between, constant, events, task

STRIPE = os.environ.get("SMI_LOAD_STRIPE", "")
OFFERS = json.loads(os.environ.get("SMI_LOAD_OFFERS", "[]"))
MAX_REQUESTS = int(os.environ.get("SMI_LOAD_MAX_REQUESTS", "20000"))
STATS_PATH = os.environ.get("SMI_LOAD_STATS", "")
PAYMENT_COPIES, REFUND_COPIES = 3, 2
REFUND_ONE_IN = 4
POLL_SECONDS, POLL_EVERY = 90, 2.0

statuses: Counter = Counter()
outcomes: Counter = Counter()
_addresses = itertools.count(1)
_stopping = False


def client_address() -> str:
    number = next(_addresses)
    block = ("198.51.100", "203.0.113")[number // 250 % 2]
    return f"{block}.{number % 250 + 1}"


_environment = None


@events.request.add_listener
def count_answer(response=None, **kwargs):
    """Tally the status; stop the whole run once ``MAX_REQUESTS`` have been sent."""
    global _stopping
    statuses[str(getattr(response, "status_code", 0) or "network")] += 1
    if not _stopping and sum(statuses.values()) >= MAX_REQUESTS and _environment:
        _stopping = True
        gevent.spawn_later(0, _environment.runner.quit)


@events.init.add_listener
def remember_environment(environment, **kwargs):
    global _environment
    _environment = environment


@events.quitting.add_listener
def write_stats(environment, **kwargs):
    if not STATS_PATH:
        return
    total = environment.stats.total
    with open(STATS_PATH, "w") as file:
        json.dump(
            {
                "requests": total.num_requests,
                "failures": total.num_failures,
                "statuses": dict(statuses),
                "outcomes": dict(outcomes),
                "median_ms": total.get_response_time_percentile(0.5),
                "p95_ms": total.get_response_time_percentile(0.95),
                "rps": round(total.total_rps, 1),
                "errors": [
                    {"name": e.name, "error": str(e.error), "count": e.occurrences}
                    for e in environment.stats.errors.values()
                ][:20],
            },
            file,
            indent=2,
        )


class ShopClient(HttpUser):
    abstract = True
    # Connect and read timeouts: a request that never ends is a failure, not a hang.
    connection_timeout = 30.0
    network_timeout = 60.0

    def on_start(self):
        self.client.headers["X-Forwarded-For"] = client_address()
        self.client.headers["Accept"] = "application/json"
        answer = self.call("GET", "/smi/v1/csrf", "csrf")
        if answer is not None and answer.status_code == 200:
            self.client.headers["X-CSRFToken"] = answer.json()["csrf_token"]

    def call(self, method: str, path: str, name: str, expect=(200,), **kwargs):
        """One request to the shop; a 429 with ``Retry-After`` (rate limited) is an answer,
        any other status than ``expect`` a failure."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as answer:
            if answer.status_code == 429 and not answer.headers.get("Retry-After", "").isdigit():
                answer.failure("429 without a Retry-After")
            elif answer.status_code in expect or answer.status_code == 429:
                answer.success()
            else:
                answer.failure(
                    f"{answer.status_code}: {answer.error!r}"
                    if answer.error
                    else f"{answer.status_code}: {answer.text[:200]}"
                )
        return answer

    def post_json(self, path: str, name: str, body: dict, expect=(200,)):
        return self.call("POST", path, name, expect, json=body)

    def offer(self) -> dict:
        image_id, page_id = random.choice(OFFERS)
        return {"image_id": image_id, "page_id": page_id}


class Browser(ShopClient):
    weight = 3
    wait_time = between(0.5, 2.5)

    @task(6)
    def prices(self):
        self.post_json("/smi/v1/calculate-all-prices", "prices", self.offer())

    @task(2)
    def click(self):
        self.post_json("/smi/v1/track-click", "click", self.offer())

    @task(1)
    def unknown_order(self):
        self.call(
            "GET",
            "/smi/v1/job-status/00000000-0000-4000-8000-000000000000?key=guess",
            "job-status (unknown)",
            expect=(404,),
        )


class Greedy(ShopClient):
    """Two clients behind one address asking for prices as fast as they can: the rate
    limit must answer them 429 (with ``Retry-After``), never an error, while the shop
    keeps serving everyone else."""

    fixed_count = 2
    wait_time = constant(0.1)
    address = "192.0.2.200"

    def on_start(self):
        super().on_start()
        self.client.headers["X-Forwarded-For"] = self.address

    @task
    def prices(self):
        answer = self.post_json("/smi/v1/calculate-all-prices", "prices (greedy)", self.offer())
        if answer.status_code == 429:
            outcomes["greedy rate limited"] += 1


class Buyer(ShopClient):
    weight = 1
    wait_time = between(1, 3)

    def on_start(self):
        super().on_start()
        self.stripe = requests.Session()

    def stripe_control(self, path: str, body: dict) -> dict:
        answer = self.stripe.post(STRIPE + path, json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def deliver(self, payload: str, signature: str, name: str, copies: int) -> None:
        """The same signed event, ``copies`` times at once: every copy must be a 200."""

        def one():
            self.call(
                "POST",
                "/smi-webhook/stripe/",
                name,
                data=payload.encode(),
                headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            )

        gevent.joinall([gevent.spawn(one) for _ in range(copies)])

    def poll(self, job_id: str, key: str, until: set[str]) -> dict:
        deadline = time.monotonic() + POLL_SECONDS
        state: dict = {}
        while time.monotonic() < deadline:
            answer = self.call("GET", f"/smi/v1/job-status/{job_id}?key={key}", "job-status")
            if answer.status_code == 200:
                state = answer.json()
                if state["status"] in until:
                    return state
            time.sleep(POLL_EVERY)
        return state

    @task
    def buy(self):
        offer = self.offer()
        self.post_json("/smi/v1/calculate-all-prices", "prices", offer)
        self.post_json("/smi/v1/track-click", "click", offer)
        number = random.randrange(10**9)
        checkout = self.post_json(
            "/smi/v1/create-checkout",
            "checkout",
            {
                **offer,
                "resolution": random.choice(["4x", "8x"]),
                "email": f"buyer{number}@example.com",
                "terms_accepted": True,
            },
        )
        if checkout.status_code != 200:
            return
        order = checkout.json()
        outcomes["checkouts"] += 1
        session_id = order["checkout_url"].rstrip("/").rsplit("/", 1)[-1]
        paid = self.stripe_control(f"/_test/checkout/sessions/{session_id}/complete", {})
        self.deliver(paid["payload"], paid["signature"], "stripe webhook (payment)", PAYMENT_COPIES)
        key = parse_qs(urlsplit(order["status_url"]).query)["key"][0]
        state = self.poll(order["job_id"], key, {"completed", "refunded", "needs_attention"})
        outcomes[f"orders {state.get('status', 'unknown')}"] += 1
        # A late duplicate of the payment event (Stripe retries for days).
        self.deliver(paid["payload"], paid["signature"], "stripe webhook (payment)", 1)
        if state.get("status") != "completed":
            return
        download = self.call("GET", state["download_url"], "download")
        if download.status_code == 200:
            outcomes["downloads"] += 1
            if not download.headers.get("Content-Type", "").startswith("image/"):
                outcomes["downloads not an image"] += 1
        if random.randrange(REFUND_ONE_IN) == 0:
            intent = json.loads(paid["payload"])["data"]["object"]["payment_intent"]
            refund = self.stripe_control(f"/_test/payment_intents/{intent}/dashboard_refund", {})
            self.deliver(
                refund["payload"], refund["signature"], "stripe webhook (refund)", REFUND_COPIES
            )
            refunded = self.poll(order["job_id"], key, {"refunded"})
            outcomes[f"dashboard refunds {refunded.get('status', 'unknown')}"] += 1
