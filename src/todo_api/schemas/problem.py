"""RFC 9457 problem details: the one shape of every error response."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FieldError(BaseModel):
    """One failing input, named by its dotted path."""

    field: str = Field(description="Dotted name of the failing input.", examples=["title"])
    message: str = Field(
        description="What is wrong with it.", examples=["must be 1-200 characters"]
    )
    type: str = Field(description="A stable machine-readable code.", examples=["string_too_long"])


class Problem(BaseModel):
    """An error, as `application/problem+json`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/validation-error",
                    "title": "Invalid request",
                    "status": 400,
                    "detail": "1 field is invalid",
                    "instance": "/api/alice/tasks",
                    "request_id": "9f1c2a4b6d8e4f00a1b2c3d4e5f60718",
                    "errors": [
                        {
                            "field": "title",
                            "message": "must be 1-200 characters",
                            "type": "string_too_long",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(description="A URI reference naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.", ge=400, le=599)
    detail: str | None = Field(default=None, description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = Field(default=None, description="The request's X-Request-ID.")
    errors: list[FieldError] | None = Field(
        default=None, description="Every failing field (validation errors only)."
    )
