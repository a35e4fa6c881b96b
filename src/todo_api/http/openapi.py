"""The OpenAPI document: exactly the statuses and media types the server sends."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from todo_api.errors import AppError, Forbidden, RateLimited, Unauthorized
from todo_api.http.problems import PROBLEM_CONTENT_TYPE, app_error_body
from todo_api.observability.requestctx import GUARDED_PREFIX
from todo_api.schemas.problem import Problem

_REF_TEMPLATE = "#/components/schemas/{model}"
# What the examples of problem documents show for the request they answer.
EXAMPLE_PATH = "/api/alice/tasks"
EXAMPLE_REQUEST_ID = "9f1c2a4b6d8e4f00a1b2c3d4e5f60718"
OpenAPIResponses = dict[int | str, dict[str, Any]]
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT from the identity provider (or `todo-api token USER_ID` in development).",
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=_REF_TEMPLATE)
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    # Validation failures are answered with 400 problem+json, never FastAPI's default 422.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    # The guard runs before FastAPI's dependencies, so the bearer scheme is declared here; each
    # guarded route declares every refusal the guard can give, and those this configuration
    # never sends are left out.
    settings = app.state.settings
    auth_enabled = settings.auth_enabled
    never_sent = set() if auth_enabled else {str(Unauthorized.status), str(Forbidden.status)}
    if settings.effective_rate_limit == "0":
        never_sent.add(str(RateLimited.status))
    if auth_enabled:
        document["components"]["securitySchemes"] = {"HTTPBearer": BEARER_SCHEME}
    for path, path_item in document.get("paths", {}).items():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if _is_frameworks_validation_error(responses.get("422")):
                responses.pop("422")
            if path.startswith(GUARDED_PREFIX):
                for status in never_sent:
                    responses.pop(status, None)
                if auth_enabled:
                    operation["security"] = [{"HTTPBearer": []}]
    app.openapi_schema = document
    return document


def _is_frameworks_validation_error(response: dict[str, Any] | None) -> bool:
    """FastAPI's own 422, which this service never sends (its 422s are problem+json)."""
    if response is None:
        return False
    return "application/json" in response.get("content", {})


def problem_responses(*errors: type[AppError]) -> OpenAPIResponses:
    """The OpenAPI responses of these errors, keyed by status: each one's description, the
    headers it carries and an example, all taken from the error class (one source for each)."""
    statuses = [error.status for error in errors]
    if len(set(statuses)) != len(statuses):
        raise ValueError(f"one response per status: {statuses}")
    return {error.status: _problem_response(error) for error in errors}


def _problem_response(error: type[AppError]) -> dict[str, Any]:
    example = app_error_body(error.example(), EXAMPLE_PATH, EXAMPLE_REQUEST_ID)
    response: dict[str, Any] = {
        "description": error.description,
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": example,
            }
        },
    }
    if error.documented_headers:
        response["headers"] = {
            name: {"description": description, "schema": {"type": json_type}}
            for name, (json_type, description) in error.documented_headers.items()
        }
    return response
