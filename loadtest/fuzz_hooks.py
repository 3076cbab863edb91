"""Schemathesis hooks for ``loadtest/run.py --fuzz`` (``SCHEMATHESIS_HOOKS=loadtest.fuzz_hooks``).

- Each generated request comes from a client of its own (``X-Forwarded-For`` through the
  shop's trusted proxy; documentation addresses, only a header), so the per-client rate
  limits stay on without turning most cases into 429s.
- Half of the generated bodies whose ids are valid numbers get the ids of an image that is
  really for sale (``SMI_FUZZ_OFFERS``), so the other fields (resolution, licence, email,
  flags) reach the checkout and the local Stripe, not only the 404.
"""

from __future__ import annotations

import itertools
import json
import os
import random

import schemathesis

OFFERS = json.loads(os.environ.get("SMI_FUZZ_OFFERS", "[]"))
_clients = itertools.count(1)


@schemathesis.hook
def before_call(context, case, **kwargs):
    number = next(_clients)
    block = ("198.51.100", "203.0.113")[number // 250 % 2]
    case.headers = {**(case.headers or {}), "X-Forwarded-For": f"{block}.{number % 250 + 1}"}


def valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


@schemathesis.hook
def map_body(context, body):
    if (
        OFFERS
        and isinstance(body, dict)
        and valid_id(body.get("image_id"))
        and valid_id(body.get("page_id"))
        and random.random() < 0.5  # noqa: S311 - choosing test data
    ):
        image_id, page_id = random.choice(OFFERS)  # noqa: S311
        body = {**body, "image_id": image_id, "page_id": page_id}
    return body
