"""Every REST API answer a test sees is checked against the OpenAPI document the server
publishes: its status must be documented for that operation, its media type the
documented one, its JSON body valid against the documented schema (formats included)."""

from __future__ import annotations

import re
from functools import lru_cache

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.api.spec import document

_SPEC_URI = "urn:smsagg:openapi"


@lru_cache(maxsize=1)
def _spec() -> tuple[dict, Registry, list[tuple[re.Pattern, str]]]:
    spec = document()
    registry = Registry().with_resource(_SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
    templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in spec["paths"]]
    return spec, registry, templates


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def operation_of(path: str, method: str) -> tuple[str, dict]:
    spec, _, templates = _spec()
    path = path.split("?", 1)[0]
    for pattern, template in templates:
        if pattern.match(path) and method.lower() in spec["paths"][template]:
            return template, spec["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def assert_conforms(method: str, path: str, response) -> None:
    template, op = operation_of(path, method)
    status = str(response.status_code)
    assert status in op["responses"], f"{method} {path}: status {status} is not documented ({response.data[:300]!r})"
    content = op["responses"][status]["content"]
    assert response.mimetype in content, f"{method} {path}: {response.mimetype} is not {list(content)}"
    if response.mimetype != "application/json":
        return
    _, registry, _ = _spec()
    pointer = _pointer("paths", template, method.lower(), "responses", status, "content", response.mimetype, "schema")
    validator = Draft202012Validator({"$ref": f"{_SPEC_URI}#/{pointer}"}, registry=registry,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(response.get_json())]
    assert not errors, f"{method} {path} {status}: the body breaks the spec: {errors}"
