"""The public API's answers checked against its OpenAPI document, in every test.

Registered for the whole suite (``tests/conftest.py``): every answer that Django's test
client gets from a ``/smi/v1/`` route is checked against ``wagtail_smi.openapi.document()``
(the route and method are described, the status is one of the operation's, the body
matches its schema, required headers are there). A test whose situation produces an answer
the document does not describe fails at teardown, saying which answer and why; so the
document cannot drift from the code without a test noticing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from django.test import Client
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE_URI = "urn:wagtail-smi:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def pointer(*parts: str) -> str:
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass
class Route:
    template: str
    pattern: re.Pattern
    operations: dict


class Contract:
    """What the document promises, as checks on one answer."""

    def __init__(self, document: dict):
        self.document = document
        self.registry = Registry().with_resource(
            BASE_URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self.routes = [
            Route(
                template,
                re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"),
                item,
            )
            for template, item in document["paths"].items()
        ]

    def route(self, path: str) -> Route | None:
        return next((r for r in self.routes if r.pattern.match(path)), None)

    def resolve(self, obj: dict, location: str) -> tuple[dict, str]:
        """A Reference Object's target and its location in the document."""
        while "$ref" in obj:
            location = obj["$ref"].removeprefix("#")
            obj = self.document
            for part in location.strip("/").split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
        return obj, location

    def validate(self, instance, location: str) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{BASE_URI}#{location}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        return [
            f"{'/'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
            for e in validator.iter_errors(instance)
        ]

    def problems(self, method: str, path: str, response) -> list[str]:
        """What is wrong with ``response`` (to ``method`` on ``path``); [] when it matches.
        Paths that are no route of the document are not the API's: nothing to say."""
        route = self.route(path)
        if route is None:
            return []
        method = method.lower()
        operation = route.operations.get(method)
        if operation is None and method == "head":
            operation = route.operations.get("get")
        if operation is None:  # the API's own 405, in its error shape
            if response.status_code != 405:
                return [f"{method.upper()} is not described and answered {response.status_code}"]
            return self.validate(json.loads(response.content), "/components/schemas/Error")
        base = pointer("paths", route.template, method if method in route.operations else "get")
        responses = operation["responses"]
        status = str(response.status_code)
        if status not in responses and "default" not in responses:
            return [f"status {status} is not one of {sorted(responses)}"]
        key = status if status in responses else "default"
        answer, location = self.resolve(responses[key], base + pointer("responses", key))
        found = [
            f"header {name} is missing"
            for name, header in answer.get("headers", {}).items()
            if header.get("required") and name not in response.headers
        ]
        content = answer.get("content") or {}
        if not content or method == "head":
            return found
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in content:
            return [*found, f"content type {content_type!r} is not one of {sorted(content)}"]
        try:
            body = json.loads(response.content)
        except ValueError:
            return [*found, "the body is not JSON"]
        return [*found, *self.validate(body, location + pointer("content", content_type, "schema"))]


_contract: Contract | None = None


def contract() -> Contract:
    """The document as this test run's settings and URLconf build it (once)."""
    global _contract
    if _contract is None:
        from wagtail_smi.openapi import document

        _contract = Contract(document())
    return _contract


@pytest.fixture(autouse=True)
def api_answers_match_the_openapi_document(monkeypatch):
    mismatches: list[str] = []
    original = Client.request

    def checked_request(self, **request):
        response = original(self, **request)
        path, method = request.get("PATH_INFO", ""), request.get("REQUEST_METHOD", "GET")
        if path.startswith("/smi/v1/") and not getattr(response, "streaming", False):
            for problem in contract().problems(method, path, response):
                mismatches.append(f"{method} {path} → {response.status_code}: {problem}")
        return response

    monkeypatch.setattr(Client, "request", checked_request)
    yield
    if mismatches:
        pytest.fail(
            "answers that the OpenAPI document (wagtail_smi/openapi.py) does not describe:\n"
            + "\n".join(mismatches),
            pytrace=False,
        )
