"""The OpenAPI 3.1 description of the public JSON API (SPEC §4), at ``/smi/v1/openapi.json``.

Built from the code it describes rather than written beside it: the request bodies come
from the API's forms (a field the API accepts is documented the moment it exists), the
statuses and stages from the state machine and the progress table, the paths from the
URLconf (so a mounted prefix is honoured), the CSRF names from Django's settings.
``tests/test_openapi.py`` checks that the document is valid OpenAPI 3.1, that every
``/smi/v1/`` route is in it, and every answer the test suite gets from the API matches
it; CI runs schemathesis against a live server with it (``loadtest/fuzz.py``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse

from . import forms, progress
from .http import json_answer, method_not_allowed
from .models import JobStatus
from .utils import MAX_ID

API_VERSION = "1"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- request bodies, from the forms ------------------------------------------------------


def field_schema(field: forms.TypedField) -> dict[str, Any]:
    """A form field as JSON Schema: the typed (JSON) form of what the field accepts."""
    if isinstance(field, forms.IdField):
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    if isinstance(field, forms.FlagField):
        return {"type": "boolean"}
    if isinstance(field, forms.EmailField):
        # Django's email validator decides; empty means "Stripe asks for it".
        return {"type": "string", "maxLength": field.max_length}
    if isinstance(field, forms.TextField):
        return {"type": "string", "maxLength": field.max_length}
    raise TypeError(f"No schema for the form field {type(field).__name__}")


def form_schema(form_class: type[forms.ApiForm], descriptions: dict[str, str]) -> dict:
    fields = form_class.base_fields
    properties = {}
    for name, field in fields.items():
        properties[name] = field_schema(field)
        if name in descriptions:
            properties[name]["description"] = descriptions[name]
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name, field in fields.items() if field.required],
    }


FIELD_DESCRIPTIONS = {
    "image_id": "The Wagtail image's id.",
    "page_id": "The id of the live page the image is sold on.",
    "resolution": 'A resolution key that the prices answer lists, e.g. "4x".',
    "licence": "A licence key that the prices answer lists; empty: the default licence.",
    "email": "Where the download link goes; empty: the payment provider asks for it.",
    "terms_accepted": "Required true when the site sets a terms URL.",
    "waive_withdrawal": "Immediate delivery, waiving the EU right of withdrawal.",
}


def request_body(schema_name: str) -> dict[str, Any]:
    """JSON (typed) or form-encoded (the same fields as text)."""
    return {
        "required": True,
        "content": {JSON: {"schema": ref(schema_name)}, FORM: {"schema": ref(schema_name)}},
    }


# --- answers -----------------------------------------------------------------------------


def error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "error": {"type": "string", "description": "A stable code, e.g. not_found."},
            "message": {"type": "string", "description": "For people, in their language."},
            "field": {"type": "string", "description": "The input field at fault."},
            "reason": {"type": "string", "description": "Why an image is not offered."},
        },
        "required": ["error", "message"],
    }


def quote_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "factor": {"type": "integer", "minimum": 1},
            "label": {"type": "string"},
            "description": {"type": "string"},
            "output_width": {"type": "integer", "minimum": 1},
            "output_height": {"type": "integer", "minimum": 1},
            "price_cents": {"type": "integer", "minimum": 0},
            "price_display": {"type": "string"},
            "available": {"type": "boolean"},
            "reason": {"type": ["string", "null"], "description": "Why it is unavailable."},
            "licence_prices": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
            "licence_prices_display": {
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
        },
        "required": [
            "factor",
            "label",
            "description",
            "output_width",
            "output_height",
            "price_cents",
            "price_display",
            "available",
            "reason",
            "licence_prices",
        ],
    }


def licence_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "name": {"type": "string"},
            "summary": {"type": "string"},
            "version": {"type": "string"},
            "terms_url": {"type": "string"},
            "terms_html": {"type": "string"},
            "default": {"type": "boolean"},
        },
        "required": ["key", "name", "summary", "terms_url", "default"],
    }


def prices_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "image": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "width": {"type": "integer", "minimum": 1},
                    "height": {"type": "integer", "minimum": 1},
                    "title": {"type": "string"},
                },
                "required": ["id", "width", "height"],
            },
            "currency": ref("Currency"),
            "pricing": {
                "type": "object",
                "description": "One entry per resolution key.",
                "additionalProperties": ref("Quote"),
            },
            "licences": {"type": "array", "items": ref("Licence")},
            "withdrawal_waiver": {
                "type": "object",
                "properties": {"required": {"type": "boolean"}, "text": {"type": "string"}},
                "required": ["required", "text"],
            },
        },
        "required": ["image", "currency", "pricing", "licences"],
    }


def checkout_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "job_id": ref("JobId"),
            "checkout_url": {"type": "string", "format": "uri"},
            "amount_cents": {"type": "integer", "minimum": 0},
            "currency": ref("Currency"),
            "status_url": {"type": "string", "format": "uri"},
        },
        "required": ["job_id", "checkout_url", "amount_cents", "currency", "status_url"],
    }


def job_status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "job_id": ref("JobId"),
            "status": {"type": "string", "enum": list(JobStatus.values)},
            "stage": {"type": "string", "enum": list(progress.STAGES)},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "message": {"type": "string"},
            "licence": {"type": "string"},
            "download_url": {
                "type": "string",
                "format": "uri",
                "description": "Present while the file can be downloaded.",
            },
            "expires_at": {"type": "string", "format": "date-time"},
        },
        "required": ["job_id", "status", "stage", "progress", "message", "licence"],
    }


def components() -> dict[str, Any]:
    return {
        "schemas": {
            "Error": error_schema(),
            "Currency": {"type": "string", "pattern": "^[a-z]{3}$"},
            "JobId": {
                "type": "string",
                "format": "uuid",
                "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            },
            "OfferRequest": form_schema(forms.OfferForm, FIELD_DESCRIPTIONS),
            "CheckoutRequest": form_schema(forms.CheckoutForm, FIELD_DESCRIPTIONS),
            "Quote": quote_schema(),
            "Licence": licence_schema(),
            "Prices": prices_schema(),
            "Checkout": checkout_schema(),
            "Click": {
                "type": "object",
                "properties": {"tracked": {"type": "boolean", "const": True}},
                "required": ["tracked"],
            },
            "JobStatus": job_status_schema(),
            "CsrfToken": {
                "type": "object",
                "properties": {"csrf_token": {"type": "string", "minLength": 1}},
                "required": ["csrf_token"],
            },
        },
        "responses": {
            name: error_response(text, retry_after=name == "RateLimited")
            for name, (_status, text) in ERROR_RESPONSES.items()
        },
    }


# The error answers (``http.status_for`` and the edges' own refusals): status, meaning.
ERROR_RESPONSES = {
    "Invalid": ("400", "Invalid input: `field` names the first field at fault."),
    "CsrfFailed": ("403", "No valid CSRF token (cookie and header)."),
    "NotFound": ("404", "Not for sale on that live page, unknown, or a wrong key."),
    "Conflict": ("409", "The order cannot do this now."),
    "TooLarge": ("413", "The body is over the upload limit."),
    "NotOffered": ("422", "For sale, but this image cannot be sold (`reason` says why)."),
    "RateLimited": ("429", "Too many requests from this client; `Retry-After` says when."),
    "CheckoutUnavailable": ("502", "The payment provider could not open a checkout."),
    "ServiceUnavailable": ("503", "A service the shop needs is down; try again later."),
}


def error_response(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": ref("Error")}},
    }
    if retry_after:
        answer["headers"] = {
            "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}
        }
    return answer


def csrf_header_name() -> str:
    """``HTTP_X_CSRFTOKEN`` (Django's META key) as the header clients send, ``X-Csrftoken``."""
    name = settings.CSRF_HEADER_NAME.removeprefix("HTTP_")
    return "-".join(part.capitalize() for part in name.split("_"))


def csrf_description() -> str:
    """CSRF is Django's, not an API key: described in words rather than as a security
    scheme (which would tell clients and fuzzers that the cookie alone is a credential)."""
    return (
        f"Protected against cross-site requests: send the `{settings.CSRF_COOKIE_NAME}` "
        f"cookie and the `{csrf_header_name()}` header with the token that "
        "GET /smi/v1/csrf answers (403 `csrf_failed` otherwise)."
    )


# --- operations --------------------------------------------------------------------------


def answers(ok_schema: str, description: str, *errors: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "200": {"description": description, "content": {JSON: {"schema": ref(ok_schema)}}}
    }
    for name in errors:
        result[ERROR_RESPONSES[name][0]] = {"$ref": f"#/components/responses/{name}"}
    return result


POST_ERRORS = ("Invalid", "CsrfFailed", "NotFound", "TooLarge", "RateLimited")


def post_operation(operation_id: str, summary: str, body: str, ok: str, *errors: str) -> dict:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": csrf_description(),
            "requestBody": request_body(body),
            "responses": answers(ok, summary, *POST_ERRORS, *errors),
        }
    }


def paths() -> dict[str, Any]:
    job_status = reverse("wagtail_smi:job_status", args=["JOB_ID"]).replace("JOB_ID", "{job_id}")
    return {
        reverse("wagtail_smi:calculate_all_prices"): post_operation(
            "calculateAllPrices",
            "Every resolution's price for an image on a page.",
            "OfferRequest",
            "Prices",
            "NotOffered",
        ),
        reverse("wagtail_smi:create_checkout"): post_operation(
            "createCheckout",
            "Create the order and its checkout; send the buyer to checkout_url.",
            "CheckoutRequest",
            "Checkout",
            "NotOffered",
            "Conflict",
            "CheckoutUnavailable",
            "ServiceUnavailable",
        ),
        reverse("wagtail_smi:track_click"): post_operation(
            "trackClick", "Count a click on a purchase button.", "OfferRequest", "Click"
        ),
        job_status: {
            "get": {
                "operationId": "jobStatus",
                "summary": "Where an order is: status, stage, progress, download.",
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The job_id create-checkout answered.",
                    },
                    {
                        "name": "key",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The order's access key (in status_url).",
                    },
                ],
                "responses": answers(
                    "JobStatus", "The order's progress.", "NotFound", "RateLimited"
                ),
            }
        },
        reverse("wagtail_smi:csrf_token"): {
            "get": {
                "operationId": "csrfToken",
                "summary": "A CSRF token (and its cookie) for the POST endpoints; never cached.",
                "responses": answers("CsrfToken", "A fresh token.", "RateLimited"),
            }
        },
        reverse("wagtail_smi:openapi"): {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document, paths as this site's URLconf mounts them."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wagtail-smi public API",
            "version": API_VERSION,
            "summary": "Prices, checkout, click tracking and order status of Sell My Images.",
            "description": (
                "JSON in (form-encoded accepted too), JSON out. Errors are "
                '{"error": code, "message": text}. POSTs need a CSRF token from GET '
                "/smi/v1/csrf (cookie and header). Public endpoints are rate limited per "
                "client (429 with Retry-After)."
            ),
            "license": {"name": "BSD-3-Clause", "identifier": "BSD-3-Clause"},
        },
        "paths": paths(),
        "components": components(),
    }


def openapi_document(request):
    """``GET /smi/v1/openapi.json``."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed("GET, HEAD")
    return json_answer(document())
