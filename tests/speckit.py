"""Kalshi's published specs as JSON Schema validators, for the simulator's and the client's tests.

The specs are vendored in tests/specs so that a clean clone runs offline
(tests/test_packaging.py checks they match ../shared/specs when that is present).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPECS = Path(__file__).resolve().parent / "specs"


def _spec_dir() -> Path:
    return SPECS


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema ``anyOf [..., null]``, recursively."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _document(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((_spec_dir() / name).read_text())
    return {"components": _openapi_to_jsonschema(doc["components"])}


def validate_rest(obj: Any, schema: str) -> None:
    """Validate against ``#/components/schemas/<schema>`` of the OpenAPI spec."""
    doc = _document("kalshi-openapi-3.13.0.yaml")
    Draft202012Validator({"$ref": f"#/components/schemas/{schema}", **doc}).validate(obj)


def validate_ws(frame: Any, schema: str) -> None:
    """Validate a whole WS frame against ``#/components/schemas/<schema>`` of the AsyncAPI."""
    doc = _document("kalshi-asyncapi.yaml")
    Draft202012Validator({"$ref": f"#/components/schemas/{schema}", **doc}).validate(frame)
