"""The OpenAPI schema, with the limits this deployment is configured with."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.config import Settings
from app.http.deps import END_USER_ID_MAX_LENGTH, END_USER_ID_PATTERN


def document_configured_limits(app: FastAPI, settings: Settings) -> None:
    """/docs and generated clients see the real `max_tokens` ceiling, allowed models and the
    end-user header's name (a dependency reads it, by a name only the settings know)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            # /chat, /chat/ui and /chat/count_tokens take the same options
            for name in ("ChatRequest", "ChatUIRequest", "CountTokensRequest"):
                request = schema["components"]["schemas"][name]["properties"]
                _non_null(request["max_tokens"])["maximum"] = settings.max_tokens_ceiling
                if settings.allowed_models:
                    _non_null(request["model"])["enum"] = settings.allowed_models
            for path in ("/chat", "/chat/ui", "/chat/count_tokens"):
                operation = schema["paths"][path]["post"]
                operation.setdefault("parameters", []).append(_end_user_header(settings.end_user_header))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _end_user_header(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": "Set by the gateway: an opaque id of the end user (never an e-mail address), "
        "sent to Anthropic as `metadata.user_id` and written on the request's log line.",
        "schema": {"type": "string", "maxLength": END_USER_ID_MAX_LENGTH, "pattern": END_USER_ID_PATTERN},
    }


def _non_null(property_schema: dict[str, Any]) -> dict[str, Any]:
    options: list[dict[str, Any]] = property_schema.get("anyOf", [property_schema])
    return next(option for option in options if option.get("type") != "null")
