"""The server's OpenAPI 3.1 document, written out by hand (Starlette's generator needs YAML)."""

from __future__ import annotations

from typing import Any

from modelci.runtime.signature import Signature

_ERROR = {
    "description": "A message saying what was wrong",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
_ROWS = {
    "type": "array",
    "items": {"oneOf": [{"type": "array"}, {"type": "number"}, {"type": "string"}]},
}


def openapi_document(
    title: str, version: str, signature: Signature | None = None
) -> dict[str, Any]:
    """The OpenAPI document for one model version's server; with the version's input
    `signature`, its rows' schema (and the signature itself as `x-modelci-signature`)."""
    rows: dict[str, Any] = _ROWS
    if signature is not None:
        row = signature.row_schema()  # one flat row is one row, as without a signature
        rows = {"oneOf": [{"type": "array", "minItems": 1, "items": row}, row]}
    predictions = {
        "type": "object",
        "properties": {"predictions": {"type": "array"}},
        "required": ["predictions"],
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {
            "/ping": {
                "get": {
                    "summary": "Health check: 200 once the model is loaded",
                    "responses": {"200": {"description": "The model is loaded"}},
                }
            },
            "/invocations": {
                "post": {
                    "summary": "Predict for the rows in the body",
                    "description": (
                        'Body: JSON (`{"instances": rows}`, `{"inputs": rows}` or a bare '
                        "list; one flat list is one row), CSV rows without a header, or one "
                        ".npy array. The Accept header chooses JSON, CSV or NPY (default JSON)."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        rows,
                                        {
                                            "type": "object",
                                            "properties": {"instances": rows},
                                            "required": ["instances"],
                                        },
                                        {
                                            "type": "object",
                                            "properties": {"inputs": rows},
                                            "required": ["inputs"],
                                        },
                                    ]
                                }
                            },
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One prediction per row",
                            "content": {
                                "application/json": {"schema": predictions},
                                "text/csv": {"schema": {"type": "string"}},
                                "application/x-npy": {
                                    "schema": {"type": "string", "format": "binary"}
                                },
                            },
                        },
                        "400": _ERROR
                        | {
                            "description": "The body does not parse, or its rows do not fit "
                            "the input signature (the message says what was expected and what "
                            "came)"
                        },
                        "406": _ERROR | {"description": "The Accept header asks for no known type"},
                        "413": _ERROR | {"description": "The body is above the size limit"},
                        "415": _ERROR | {"description": "Unknown Content-Type"},
                        "500": _ERROR | {"description": "The handler raised"},
                    },
                }
            },
            "/metadata": {
                "get": {
                    "summary": "Model, version, commit, environment, handler, loaded_at, signature",
                    "responses": {"200": {"description": "The model version being served"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Prometheus text format"}},
                }
            },
        },
    }
    if signature is not None:
        invocations = document["paths"]["/invocations"]["post"]
        invocations["x-modelci-signature"] = signature.to_dict()
    return document
