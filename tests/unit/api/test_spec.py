"""The OpenAPI document is valid OpenAPI 3.1, describes exactly the routes Flask serves
under ``/api/v1`` (walking ``url_map``: nothing missing, nothing extra), uses only real
JSON Schema keywords, and agrees with the error table of ``docs/rest-api.md``; the docs
page renders it without fetching anything from elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from app.api.errors import ERROR_CODES, REFUSAL_CODES
from app.api.spec import document, openapi_path
from app.settings import Settings
from app.web import create_app

# JSON Schema 2020-12 keywords, plus the OpenAPI 3.1 words that sit beside schemas.
_SCHEMA_KEYWORDS = {
    "$ref", "$defs", "type", "enum", "const", "anyOf", "allOf", "oneOf", "not", "items", "prefixItems",
    "properties", "additionalProperties", "required", "minItems", "maxItems", "uniqueItems", "minLength",
    "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "default", "description", "title", "examples",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    return create_app(Settings(home=home, redis_url="redis://127.0.0.1:1/0",
                               database_url=f"sqlite:///{home / 'smsagg.db'}"))


def test_the_document_is_valid_openapi_3_1():
    spec = document()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_the_document_covers_exactly_the_routes_flask_serves(app):
    served = {
        (openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {(path, method.upper()) for path, methods in document()["paths"].items() for method in methods}
    assert served == described
    assert ("/api/v1/messages/{message_id}", "DELETE") in served and ("/api/v1/openapi.json", "GET") in served


def _schemas(node, path="#"):
    """Every (location, schema) in the document's schema positions."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield from _walk_schema(node["schema"], f"{path}/schema")
        for key, value in node.items():
            if key == "schemas":
                for name, schema in value.items():
                    yield from _walk_schema(schema, f"{path}/schemas/{name}")
            elif key != "schema":
                yield from _schemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schemas(value, f"{path}/{index}")


def _walk_schema(schema, path):
    yield path, schema
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            yield from _walk_schema(schema[key], f"{path}/{key}")
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for index, branch in enumerate(schema.get(key, ())):
            yield from _walk_schema(branch, f"{path}/{key}/{index}")
    for name, prop in schema.get("properties", {}).items():
        yield from _walk_schema(prop, f"{path}/properties/{name}")


def test_schemas_use_only_json_schema_keywords():
    """pydantic silently emits keywords no validator knows (``ge``/``le`` when a validator
    precedes ``Field``): generators and clients would then ignore the constraint."""
    found = list(_schemas(document()))
    assert len(found) > 50
    strays = {(path, key) for path, schema in found for key in schema if key not in _SCHEMA_KEYWORDS}
    assert not strays


def test_every_error_code_is_documented_with_its_status():
    table = (Path(__file__).parents[3] / "docs" / "rest-api.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", table, flags=re.MULTILINE))
    assert {code: int(status) for code, status in rows.items()} == {code: s for code, (s, _) in ERROR_CODES.items()}
    assert set(REFUSAL_CODES) <= set(ERROR_CODES)


def test_every_operation_answers_401_and_its_errors_only_in_json():
    for path, methods in document()["paths"].items():
        for method, op in methods.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/json"], (path, method, status)
            assert ("401" in op["responses"]) == bool(op["security"]), (path, method)


def test_the_docs_page_renders_everything_and_loads_nothing(app):
    response = app.test_client().get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path in document()["paths"]:
        assert path in page
    for code in ERROR_CODES:
        assert f"<code>{code}</code>" in page
    assert "://" not in page and "<script" not in page and "@import" not in page


def test_the_document_is_served(app):
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json() == document()
