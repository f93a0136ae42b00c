"""The OpenAPI 3.1 document of ``/api/v1``, assembled from what serves it: the
operations :func:`app.api.web.operation` registered (paths, methods, parameters,
statuses, the error codes each may answer) and the pydantic models of
:mod:`app.api.schemas` (``components/schemas``). Nothing is written by hand, so the
document cannot drift from the routes; the tests check that it covers Flask's
``url_map`` exactly and that every answer conforms to it.

Each error response narrows ``Error.error`` to the codes that operation can answer
with that status, so an undeclared code fails the conformance checks.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from app.api.errors import ERROR_CODES
from app.api.schemas import Error
from app.api.web import OPERATIONS, Operation

TITLE = "smsagg REST API"
VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
_PATH_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")
_DESCRIPTION = """JSON API of the smsagg SMS gateway, beside its wire-compatible vendor APIs
(`/httpapi/receiver`, `/bulksms/*`). Authenticate with `Authorization: Bearer <API key>`
(`smsagg apikey create --account LOGIN`) or HTTP Basic with the account's login and
password. Every error is JSON `{"error": <stable code>, "message": ...}`."""


def openapi_path(rule: str) -> str:
    return _PATH_PARAMETER.sub(r"{\1}", rule)


def _models() -> tuple[dict, dict]:
    inputs = {op.body for op in OPERATIONS if op.body is not None}
    outputs = {model for op in OPERATIONS for model in op.success.values() if model is not None} | {Error}
    pairs = [(model, "validation") for model in sorted(inputs, key=lambda m: m.__name__)]
    pairs += [(model, "serialization") for model in sorted(outputs, key=lambda m: m.__name__)]
    refs, definitions = models_json_schema(pairs, ref_template=_REF)
    return refs, definitions.get("$defs", {})


def _not_null(schema: dict) -> dict:
    """A query parameter's schema without pydantic's ``null`` branch for optional fields."""
    branches = schema.get("anyOf")
    if branches:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1:
            merged = {key: value for key, value in schema.items() if key != "anyOf"}
            return {**kept[0], **merged}
    return schema


def _parameters(op: Operation) -> list[dict]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                  for name in _PATH_PARAMETER.findall(op.rule)]
    parameters += copy.deepcopy(list(op.parameters))
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            prop = _not_null(dict(prop))
            description = prop.pop("description", None)
            prop.pop("title", None)
            if prop.get("default", "") is None:
                del prop["default"]
            parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if description:
                parameter["description"] = description
            parameters.append(parameter)
    return parameters


def _error_responses(op: Operation, error_ref: str) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in op.errors:
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    responses: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": "; ".join(f"`{code}`: {ERROR_CODES[code][1]}" for code in codes),
            "content": {"application/json": {"schema": {
                "allOf": [{"$ref": error_ref}, {"properties": {"error": {"enum": codes}}}]}}},
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[str(status)] = response
    return responses


def _success_content(op: Operation, refs: dict, model) -> dict:
    if model is not None:
        return {op.media_type: {"schema": refs[(model, "serialization")]}}
    schema = {"type": "string"} if op.media_type == "text/html" else {"type": "object"}
    return {op.media_type: {"schema": schema}}


def _operation(op: Operation, refs: dict) -> dict:
    entry: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        entry["description"] = op.description
    parameters = _parameters(op)
    if parameters:
        entry["parameters"] = parameters
    if op.body is not None:
        entry["requestBody"] = {"required": True,
                                "content": {"application/json": {"schema": refs[(op.body, "validation")]}}}
    responses = {str(status): {"description": model.__name__ if model else op.summary,
                               "content": _success_content(op, refs, model)}
                 for status, model in op.success.items()}
    responses.update(_error_responses(op, refs[(Error, "serialization")]["$ref"]))
    entry["responses"] = responses
    entry["security"] = [{"apiKey": []}, {"basic": []}] if op.secured else []
    return entry


@lru_cache(maxsize=1)
def _document() -> dict:
    refs, schemas = _models()
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": _DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "smsagg_<key id>_<secret>"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }


def document() -> dict:
    """A fresh copy (callers may change it)."""
    return copy.deepcopy(_document())
