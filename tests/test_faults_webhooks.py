"""Fault: the database connection is lost while Stripe's payment webhook is being applied.

The shop runs in subprocesses (gunicorn with two workers, ``tests.fault_support.Shop``),
its payment backend pointed at the local fake Stripe. While the webhook is in the middle
of its transaction, the test takes the database away from it:

- PostgreSQL: the test holds the order's row lock, so the webhook stops inside its
  transaction (its event id already written), and then ends the web process's database
  session with ``pg_terminate_backend``: the connection drops mid-transaction.
- SQLite: the test holds the database's write lock longer than the shop's busy timeout,
  so the webhook's transaction cannot go on ("database is locked").

Stripe must get a 5xx (so it sends the event again), nothing may be half-applied (no
payment, no event id stored, no task queued, no email), and the redelivery applies it.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import requests

from tests.fault_support import stack
from tests.stripe_fixtures import API_KEY, WEBHOOK_SECRET

pytestmark = pytest.mark.faults


def post_webhook(shop, payload: str, signature: str) -> requests.Response:
    return requests.post(
        shop.web_url + "/smi-webhook/stripe/",
        data=payload.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        timeout=90,
    )


class PostgresOutage:
    """Hold the order's row lock; end the session of whoever waits for it."""

    def __init__(self, url: str, job_id: str):
        import psycopg

        self.holder = psycopg.connect(url)
        self.holder.execute(
            "SELECT id FROM wagtail_smi_purchasejob WHERE id = %s FOR UPDATE", [job_id]
        )
        self.admin = psycopg.connect(url, autocommit=True)

    def strike(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = self.admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            ).fetchall()
            if rows:
                for (pid,) in rows:
                    self.admin.execute("SELECT pg_terminate_backend(%s)", [pid])
                return
            time.sleep(0.2)
        raise AssertionError("the webhook never reached the order's row lock")

    def end(self) -> None:
        self.holder.rollback()
        self.holder.close()
        self.admin.close()


class SqliteOutage:
    """Hold the database's write lock past the shop's busy timeout."""

    def __init__(self, path: str, job_id: str):
        self.holder = sqlite3.connect(path, isolation_level=None, timeout=5)
        self.holder.execute("BEGIN IMMEDIATE")

    def strike(self) -> None:
        pass  # the lock itself is the fault: the webhook's write times out behind it

    def end(self) -> None:
        self.holder.execute("ROLLBACK")
        self.holder.close()


def test_database_connection_dropped_while_a_webhook_is_applied_answers_5xx_then_the_retry_applies_it(  # noqa: E501
    make_shop, fake_stripe
):
    shop = make_shop(
        SMI_PAYMENT_BACKEND="stripe",
        SMI_STRIPE_SECRET_KEY=API_KEY,
        SMI_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SMI_STRIPE_API_BASE=fake_stripe.base_url,
    )
    shop.start_web()
    job_id, session_id = shop.checkout_order()
    _event, payload, signature = fake_stripe.complete_session(session_id)
    before = shop.order_state(job_id)
    assert before["status"] == "awaiting_payment"

    if stack() == "postgres-redis":
        outage = PostgresOutage(shop.env["DATABASE_URL"], job_id)
    else:
        outage = SqliteOutage(str(shop.folder / "db.sqlite3"), job_id)
    answers: list[requests.Response] = []
    delivery = threading.Thread(
        target=lambda: answers.append(post_webhook(shop, payload, signature))
    )
    try:
        delivery.start()
        outage.strike()
        delivery.join(90)
    finally:
        outage.end()

    [failed] = answers
    assert failed.status_code >= 500  # Stripe sends the event again
    assert shop.order_state(job_id) == before  # nothing half-applied
    assert shop.mails_to("buyer@example.com") == []

    retried = post_webhook(shop, payload, signature)  # Stripe's redelivery

    assert retried.status_code == 200
    after = shop.order_state(job_id)
    assert after["status"] == "paid" and after["paid_at"]
    assert after["processed_events"] == 1
    assert after["events"].count("payment_received") == 1
    assert after["queued"] == 1  # processing handed to the worker, once
    assert post_webhook(shop, payload, signature).json() == {"status": "duplicate"}
    shop.assert_consistent()
