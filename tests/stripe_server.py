"""A local Stripe-compatible server for tests (standard library only).

It speaks enough of Stripe's REST API, form-encoded like the real one, for the official
``stripe`` library: Checkout Sessions (create in ``payment`` or ``setup`` mode, with
``discounts``; retrieve, expire, line items), Prices, Payment Links, Coupons,
PaymentIntents, Charges, Refunds (amount limits; ``Idempotency-Key`` replays the first
answer) and Events. Test controls (HTTP under ``/_test/`` and the same as Python methods)
open a Payment Link the way a payer does (choosing ``client_reference_id``), complete a
session (optionally with a promotion code the buyer entered), fail async payments, issue a
dashboard refund and make refunds fail; each builds the event Stripe would send, signed
exactly as Stripe signs (``t=<unix>,v1=hex(HMAC_SHA256(secret, f"{t}.{payload}"))``), and
can POST it to a webhook URL.

Every session carries Stripe's amount fields: ``amount_subtotal`` (line items),
``amount_total`` (after discounts) and ``total_details.amount_discount``; ``setup`` sessions
have no amounts, no currency unless given, and complete with a SetupIntent and
``payment_status="no_payment_required"``, as Stripe's do.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{next(_counter):08d}{hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:10]}"


def decode_form(body: str) -> dict[str, Any]:
    """``a[b][0][c]=1`` → ``{"a": {"b": [{"c": "1"}]}}`` (Stripe's form encoding)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            nxt_is_index = not last and parts[index + 1].isdigit()
            if isinstance(node, list):
                pos = int(part)
                while len(node) <= pos:
                    node.append(None)
                if last:
                    node[pos] = value
                else:
                    if node[pos] is None:
                        node[pos] = [] if nxt_is_index else {}
                    node = node[pos]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return root


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class StripeError(Exception):
    def __init__(
        self, status: int, message: str, *, type_: str = "invalid_request_error", code: str = ""
    ):
        super().__init__(message)
        self.status, self.type, self.code = status, type_, code

    def body(self) -> dict[str, Any]:
        error = {"type": self.type, "message": str(self)}
        if self.code:
            error["code"] = self.code
        return {"error": error}


class FakeStripe:
    """The server's state, usable directly from tests (same process, other thread)."""

    def __init__(self, *, webhook_secret: str = "whsec_test_secret", api_key: str = "sk_test_fake"):
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.lock = threading.RLock()
        self.sessions: dict[str, dict] = {}
        self.line_items: dict[str, list] = {}
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.events: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.payment_links: dict[str, dict] = {}
        self.coupons: dict[str, dict] = {}
        self.setup_intents: dict[str, dict] = {}
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.requests: list[dict[str, Any]] = []
        # "ok", "refuse" (the API answers an error) or "fail" (the refund ends failed).
        self.refund_mode = "ok"
        # Failures answered to the next API requests, in order, before any is handled:
        # an HTTP status (500, 429 with Stripe-Should-Retry as Stripe's lock timeouts) or
        # a number of seconds (float) to wait before handling it (a slow answer).
        self.fail_next: list[int | float] = []
        self.base_url = ""

    # Helpers used by tests ---------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    def sign(self, payload: str, timestamp: int | None = None, secret: str | None = None) -> str:
        return sign(payload, secret or self.webhook_secret, timestamp)

    def make_event(self, type_: str, obj: dict[str, Any]) -> tuple[dict, str, str]:
        """Store an event and return it with its JSON payload and signature header."""
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": int(time.time()),
            "type": type_,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": json.loads(json.dumps(obj))},
        }
        with self.lock:
            self.events[event["id"]] = event
        payload = json.dumps(event)
        return event, payload, self.sign(payload)

    @staticmethod
    def deliver(url: str, payload: str, signature: str) -> int:
        request = urllib.request.Request(
            url,
            data=payload.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    # Test controls -------------------------------------------------------------------

    def complete_session(
        self,
        session_id: str,
        *,
        email: str = "buyer@example.com",
        paid: bool = True,
        promotion_coupon: str | None = None,
    ):
        """The buyer paid (or started a delayed payment): PaymentIntent + Charge + event.

        ``promotion_coupon``: the buyer entered a promotion code for this coupon on the
        Checkout page (the session must allow promotion codes). A session that leaves
        nothing to pay (``setup`` mode, or a 100 % discount) completes without a payment.
        """
        with self.lock:
            session = self.sessions[session_id]
            if session["status"] != "open":
                raise StripeError(400, f"session {session_id} is {session['status']}")
            if promotion_coupon is not None:
                if not session.get("_allow_promotion_codes"):
                    raise StripeError(400, "This session does not accept promotion codes.")
                self._apply_discount(session, self._coupon(promotion_coupon))
            details = {"email": email or session.get("customer_email"), "name": "Test Buyer"}
            if session["mode"] == "setup":
                intent = {
                    "id": new_id("seti"),
                    "object": "setup_intent",
                    "status": "succeeded",
                    "metadata": dict(session.get("metadata") or {}),
                }
                self.setup_intents[intent["id"]] = intent
                session.update(
                    status="complete",
                    payment_status="no_payment_required",
                    setup_intent=intent["id"],
                    customer_details=details,
                )
                return self.make_event("checkout.session.completed", self._public(session))
            amount = session["amount_total"]
            if amount == 0:
                session.update(
                    status="complete",
                    payment_status="no_payment_required",
                    customer_details=details,
                )
                return self.make_event("checkout.session.completed", self._public(session))
            pi_meta = dict(session.get("_pi_metadata") or {})
            intent = {
                "id": new_id("pi"),
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount if paid else 0,
                "currency": session["currency"],
                "metadata": pi_meta,
                "status": "succeeded" if paid else "processing",
                "latest_charge": None,
            }
            self.payment_intents[intent["id"]] = intent
            if paid:
                self._charge_for(intent)
            session.update(
                status="complete",
                payment_status="paid" if paid else "unpaid",
                payment_intent=intent["id"],
                customer_details=details,
            )
            snapshot = self._public(session)
        return self.make_event("checkout.session.completed", snapshot)

    def open_payment_link(self, link_id: str, *, client_reference_id: str | None = None) -> dict:
        """A payer opens ``https://buy.stripe.com/...?client_reference_id=...``: a new session.

        Whoever holds the link chooses ``client_reference_id``; the link's metadata and
        ``payment_intent_data.metadata`` are copied to the session and its PaymentIntent.
        """
        with self.lock:
            link = self.payment_links.get(link_id)
            if link is None:
                raise StripeError(
                    404, f"No such payment_link: '{link_id}'", code="resource_missing"
                )
            params = {
                "mode": "payment",
                "success_url": "https://buy.stripe.com/thanks",
                "line_items": [
                    {"quantity": item["quantity"], "price": item["price"]}
                    for item in link["line_items"]
                ],
                "metadata": dict(link["metadata"]),
                "payment_intent_data": {"metadata": dict(link["_pi_metadata"])},
            }
            if client_reference_id is not None:
                params["client_reference_id"] = client_reference_id
            if link["allow_promotion_codes"]:
                params["allow_promotion_codes"] = "true"
            session = self._create_session(params)
            session["payment_link"] = link_id
            return self._public(session)

    def create_coupon(
        self,
        *,
        amount_off: int | None = None,
        currency: str | None = None,
        percent_off: float | None = None,
    ) -> dict:
        with self.lock:
            return self._create_coupon(
                {
                    k: v
                    for k, v in {
                        "amount_off": amount_off,
                        "currency": currency,
                        "percent_off": percent_off,
                    }.items()
                    if v is not None
                }
            )

    def _charge_for(self, intent: dict) -> dict:
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "metadata": dict(intent["metadata"]),
            "payment_intent": intent["id"],
            "paid": True,
            "refunded": False,
            "status": "succeeded",
        }
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        return charge

    def async_payment(self, session_id: str, *, succeeded: bool):
        with self.lock:
            session = self.sessions[session_id]
            intent = self.payment_intents[session["payment_intent"]]
            if succeeded:
                intent.update(status="succeeded", amount_received=intent["amount"])
                self._charge_for(intent)
                session["payment_status"] = "paid"
            else:
                intent["status"] = "requires_payment_method"
            snapshot = self._public(session)
        kind = "succeeded" if succeeded else "failed"
        return self.make_event(f"checkout.session.async_payment_{kind}", snapshot)

    def expire_session(self, session_id: str):
        with self.lock:
            session = self.sessions[session_id]
            if session["status"] != "open":
                raise StripeError(400, f"Only open sessions can be expired ({session['status']}).")
            session["status"] = "expired"
            snapshot = self._public(session)
        return self.make_event("checkout.session.expired", snapshot)

    def dashboard_refund(self, payment_intent_id: str, amount: int | None = None):
        """A refund made in the Stripe dashboard: the refund plus a charge.refunded event."""
        with self.lock:
            refund = self._create_refund(
                {"payment_intent": payment_intent_id, **({"amount": amount} if amount else {})}
            )
            charge = self.charges[refund["charge"]]
        return self.make_event("charge.refunded", charge)

    def refund_failed_later(self, refund_id: str, reason: str = "expired_or_canceled_card"):
        with self.lock:
            refund = self.refunds[refund_id]
            refund.update(status="failed", failure_reason=reason)
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
        return self.make_event("refund.updated", refund)

    # The API ---------------------------------------------------------------------------

    def _public(self, obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _line_item(self, item: dict) -> dict:
        """A line item from ``price_data`` or a stored Price id."""
        if item.get("price"):
            price = self.prices.get(item["price"])
            if price is None:
                raise StripeError(400, f"No such price: '{item['price']}'", code="resource_missing")
            price_data = {
                "unit_amount": price["unit_amount"],
                "currency": price["currency"],
                "product_data": price["product_data"],
            }
        else:
            price_data = item.get("price_data") or {}
        try:
            unit = int(price_data["unit_amount"])
            quantity = int(item.get("quantity", 1))
        except (KeyError, ValueError):
            raise StripeError(400, "Invalid line_items: unit_amount and quantity are required.")
        if not price_data.get("currency") or not (price_data.get("product_data") or {}).get("name"):
            raise StripeError(
                400, "Invalid line_items: currency and product_data[name] are required."
            )
        currency = price_data["currency"].lower()
        return {
            "id": new_id("li"),
            "object": "item",
            "amount_subtotal": unit * quantity,
            "amount_total": unit * quantity,
            "currency": currency,
            "description": price_data["product_data"]["name"],
            "quantity": quantity,
            "price": {
                "object": "price",
                "id": item.get("price"),
                "unit_amount": unit,
                "currency": currency,
                "product_data": price_data["product_data"],
            },
        }

    def _create_session(self, params: dict) -> dict:
        mode = params.get("mode")
        for field in ("mode", "success_url"):
            if field not in params:
                raise StripeError(400, f"Missing required param: {field}.")
        if mode not in ("payment", "setup"):
            raise StripeError(400, f"This test server does not support mode={mode}.")
        if mode == "payment" and not params.get("line_items"):
            raise StripeError(400, "Missing required param: line_items.")
        if mode == "setup" and params.get("line_items"):
            raise StripeError(400, "line_items cannot be used in setup mode.")
        stored_items = [self._line_item(item) for item in params.get("line_items") or []]
        currencies = {item["currency"] for item in stored_items}
        if len(currencies) > 1:
            raise StripeError(400, "All line items must use the same currency.")
        currency = (
            currencies.pop() if currencies else (params.get("currency") or "").lower() or None
        )
        subtotal = (
            sum(item["amount_subtotal"] for item in stored_items) if mode == "payment" else None
        )
        now = int(time.time())
        expires_at = int(params.get("expires_at") or now + 24 * 3600)
        if not (now + 30 * 60 <= expires_at <= now + 24 * 3600):
            raise StripeError(400, "expires_at must be between 30 minutes and 24 hours from now.")
        session_id = new_id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "payment_status": "unpaid",
            "url": f"{self.base_url}/c/pay/{session_id}",
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "total_details": (
                {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}
                if mode == "payment"
                else None
            ),
            "discounts": [],
            "currency": currency,
            "metadata": params.get("metadata") or {},
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "customer_details": None,
            "payment_intent": None,
            "setup_intent": None,
            "payment_link": None,
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "expires_at": expires_at,
            "created": now,
            "livemode": False,
            "_params": params,
            "_pi_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {},
            "_allow_promotion_codes": params.get("allow_promotion_codes") == "true",
        }
        discounts = params.get("discounts") or []
        if discounts and session["_allow_promotion_codes"]:
            raise StripeError(
                400,
                "You may only specify one of these parameters: allow_promotion_codes, discounts.",
            )
        for discount in discounts:
            if mode != "payment" or not discount.get("coupon"):
                raise StripeError(400, "discounts need a coupon and a payment-mode session.")
            self._apply_discount(session, self._coupon(discount["coupon"]))
        self.sessions[session_id] = session
        self.line_items[session_id] = stored_items
        return session

    def _coupon(self, coupon_id: str) -> dict:
        coupon = self.coupons.get(coupon_id)
        if coupon is None:
            raise StripeError(400, f"No such coupon: '{coupon_id}'", code="resource_missing")
        return coupon

    def _apply_discount(self, session: dict, coupon: dict) -> None:
        """Stripe's arithmetic: the subtotal stays, the total drops by the discount."""
        subtotal = session["amount_subtotal"] or 0
        if coupon.get("amount_off") is not None:
            if coupon["currency"] != session["currency"]:
                raise StripeError(400, "The coupon's currency does not match the session's.")
            off = int(coupon["amount_off"])
        else:
            off = int(round(subtotal * float(coupon["percent_off"]) / 100))
        off = min(off, subtotal)
        session["total_details"]["amount_discount"] = off
        session["amount_total"] = subtotal - off
        session["discounts"] = [{"coupon": coupon["id"], "promotion_code": None}]

    def _create_coupon(self, params: dict) -> dict:
        if params.get("amount_off") is not None:
            if not params.get("currency"):
                raise StripeError(400, "amount_off needs a currency.")
            coupon = {
                "amount_off": int(params["amount_off"]),
                "currency": params["currency"].lower(),
                "percent_off": None,
            }
        elif params.get("percent_off") is not None:
            coupon = {
                "amount_off": None,
                "currency": None,
                "percent_off": float(params["percent_off"]),
            }
        else:
            raise StripeError(400, "One of amount_off or percent_off is required.")
        coupon.update(id=params.get("id") or new_id("co"), object="coupon", valid=True)
        self.coupons[coupon["id"]] = coupon
        return coupon

    def _create_price(self, params: dict) -> dict:
        try:
            unit = int(params["unit_amount"])
        except (KeyError, ValueError):
            raise StripeError(400, "Missing required param: unit_amount.")
        if not params.get("currency") or not (params.get("product_data") or {}).get("name"):
            raise StripeError(400, "Missing required param: currency or product_data[name].")
        price = {
            "id": new_id("price"),
            "object": "price",
            "unit_amount": unit,
            "currency": params["currency"].lower(),
            "product_data": params["product_data"],
        }
        self.prices[price["id"]] = price
        return price

    def _create_payment_link(self, params: dict) -> dict:
        items = params.get("line_items") or []
        if not items or any(not item.get("price") for item in items):
            raise StripeError(400, "Missing required param: line_items[][price].")
        for item in items:
            self._line_item(item)  # the prices exist
        link_id = new_id("plink")
        link = {
            "id": link_id,
            "object": "payment_link",
            "active": True,
            "url": f"{self.base_url}/b/{link_id}",
            "line_items": [
                {"price": i["price"], "quantity": int(i.get("quantity", 1))} for i in items
            ],
            "metadata": params.get("metadata") or {},
            "allow_promotion_codes": params.get("allow_promotion_codes") == "true",
            "_pi_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {},
        }
        self.payment_links[link_id] = link
        return link

    def _create_refund(self, params: dict) -> dict:
        charge = None
        if params.get("charge"):
            charge = self.charges.get(params["charge"])
        elif params.get("payment_intent"):
            intent = self.payment_intents.get(params["payment_intent"])
            if intent is None:
                raise StripeError(
                    404,
                    f"No such payment_intent: '{params['payment_intent']}'",
                    code="resource_missing",
                )
            charge = self.charges.get(intent.get("latest_charge") or "")
        else:
            raise StripeError(400, "One of charge or payment_intent is required.")
        if charge is None:
            raise StripeError(
                400,
                "This PaymentIntent has no successful charge to refund.",
                code="charge_not_refundable",
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = int(params.get("amount") or remaining)
        if amount <= 0 or amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                code="amount_too_large",
            )
        if self.refund_mode == "refuse":
            raise StripeError(
                402,
                "The refund could not be processed for this card.",
                type_="card_error",
                code="refund_declined",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "metadata": params.get("metadata") or {},
            "reason": params.get("reason"),
            "status": "failed" if self.refund_mode == "fail" else "succeeded",
            "failure_reason": "lost_or_stolen_card" if self.refund_mode == "fail" else None,
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        if refund["status"] == "succeeded":
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return refund

    def _list(self, items: list[dict], url: str) -> dict:
        return {"object": "list", "data": items, "has_more": False, "url": url}

    def route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        def get(store: dict, key: str, kind: str) -> dict:
            if key not in store:
                raise StripeError(404, f"No such {kind}: '{key}'", code="resource_missing")
            return self._public(store[key])

        m = re.fullmatch
        with self.lock:
            if method == "POST" and path == "/v1/checkout/sessions":
                return 200, self._public(self._create_session(params))
            if method == "GET" and path == "/v1/checkout/sessions":
                found = [
                    self._public(x)
                    for x in reversed(self.sessions.values())
                    if "payment_intent" not in params
                    or x["payment_intent"] == params["payment_intent"]
                ]
                return 200, self._list(found[: int(params.get("limit") or 10)], path)
            if match := m(r"/v1/checkout/sessions/([^/]+)", path):
                return 200, get(self.sessions, match[1], "checkout.session")
            if method == "POST" and (match := m(r"/v1/checkout/sessions/([^/]+)/expire", path)):
                self.expire_session(match[1])
                return 200, get(self.sessions, match[1], "checkout.session")
            if match := m(r"/v1/checkout/sessions/([^/]+)/line_items", path):
                get(self.sessions, match[1], "checkout.session")
                return 200, self._list(self.line_items[match[1]], path)
            if match := m(r"/v1/payment_intents/([^/]+)", path):
                return 200, get(self.payment_intents, match[1], "payment_intent")
            if match := m(r"/v1/charges/([^/]+)", path):
                return 200, get(self.charges, match[1], "charge")
            if method == "POST" and path == "/v1/prices":
                return 200, self._public(self._create_price(params))
            if method == "POST" and path == "/v1/payment_links":
                return 200, self._public(self._create_payment_link(params))
            if match := m(r"/v1/payment_links/([^/]+)", path):
                return 200, get(self.payment_links, match[1], "payment_link")
            if method == "POST" and path == "/v1/coupons":
                return 200, self._create_coupon(params)
            if match := m(r"/v1/coupons/([^/]+)", path):
                return 200, get(self.coupons, match[1], "coupon")
            if method == "POST" and path == "/v1/refunds":
                return 200, self._create_refund(params)
            if method == "GET" and path == "/v1/refunds":
                # Newest first, like Stripe; filtered by charge or payment_intent.
                found = [
                    self._public(r)
                    for r in reversed(self.refunds.values())
                    if all(
                        r.get(f) == params[f] for f in ("charge", "payment_intent") if f in params
                    )
                ]
                return 200, self._list(found[: int(params.get("limit") or 10)], path)
            if match := m(r"/v1/refunds/([^/]+)", path):
                return 200, get(self.refunds, match[1], "refund")
            if method == "GET" and path == "/v1/events":
                return 200, self._list(list(self.events.values())[::-1], path)
            if match := m(r"/v1/events/([^/]+)", path):
                return 200, get(self.events, match[1], "event")
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    def control(self, path: str, data: dict) -> tuple[int, dict]:
        """``/_test/...``: JSON in, ``{"event", "payload", "signature", "delivered"}`` out."""
        if path == "/_test/refund-mode":
            self.refund_mode = data.get("mode", "ok")
            return 200, {"refund_mode": self.refund_mode}
        if match := re.fullmatch(r"/_test/payment_links/([^/]+)/open", path):
            return 200, self.open_payment_link(
                match[1], client_reference_id=data.get("client_reference_id")
            )
        if match := re.fullmatch(r"/_test/checkout/sessions/([^/]+)/complete", path):
            result = self.complete_session(
                match[1],
                email=data.get("email", "buyer@example.com"),
                paid=data.get("paid", True),
                promotion_coupon=data.get("promotion_coupon"),
            )
        elif match := re.fullmatch(r"/_test/checkout/sessions/([^/]+)/async_payment", path):
            result = self.async_payment(match[1], succeeded=data.get("succeeded", True))
        elif match := re.fullmatch(r"/_test/checkout/sessions/([^/]+)/expire", path):
            result = self.expire_session(match[1])
        elif match := re.fullmatch(r"/_test/payment_intents/([^/]+)/dashboard_refund", path):
            result = self.dashboard_refund(match[1], data.get("amount"))
        else:
            raise StripeError(404, f"Unknown test control {path}")
        event, payload, signature = result
        delivered = (
            self.deliver(data["webhook_url"], payload, signature)
            if data.get("webhook_url")
            else None
        )
        return 200, {
            "event": event,
            "payload": payload,
            "signature": signature,
            "delivered": delivered,
        }


class _Handler(BaseHTTPRequestHandler):
    server: StripeHTTPServer

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", new_id("req"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if parts.path.startswith("/_test/"):
            try:
                status, body = fake.control(parts.path, json.loads(raw or "{}"))
            except StripeError as exc:
                status, body = exc.status, exc.body()
            return self._send(status, body)
        params = decode_form(raw if method == "POST" else parts.query)
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        with fake.lock:
            fake.requests.append(
                {
                    "method": method,
                    "path": parts.path,
                    "params": params,
                    "idempotency_key": key,
                    "stripe_version": self.headers.get("Stripe-Version"),
                }
            )
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._send(401, StripeError(401, "Invalid API Key provided.").body())
            failure = fake.fail_next.pop(0) if fake.fail_next else None
            if isinstance(failure, int):
                retry = {"Stripe-Should-Retry": "true"} if failure == 429 else None
                error = StripeError(failure, "Injected failure.", type_="api_error")
                return self._send(failure, error.body(), retry)
        if isinstance(failure, float):
            time.sleep(failure)  # outside the lock: other requests go on meanwhile
        with fake.lock:
            if key and key in fake.idempotent:
                status, body = fake.idempotent[key]
                return self._send(status, body, {"Idempotent-Replayed": "true"})
            try:
                status, body = fake.route(method, parts.path, params)
            except StripeError as exc:
                status, body = exc.status, exc.body()
            if key and status != 404:
                fake.idempotent[key] = (status, body)
        self._send(status, body)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


class StripeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStripe):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        fake.base_url = f"http://127.0.0.1:{self.server_address[1]}"


def start(fake: FakeStripe | None = None) -> tuple[StripeHTTPServer, threading.Thread]:
    fake = fake or FakeStripe()
    server = StripeHTTPServer(fake)
    thread = threading.Thread(target=server.serve_forever, name="fake-stripe", daemon=True)
    thread.start()
    return server, thread
