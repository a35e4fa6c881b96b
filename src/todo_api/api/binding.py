"""An endpoint's arguments read straight off the request, as FastAPI's solver would read them.

FastAPI solves every parameter of every request through its general machinery: a dependency
tree, per-field alias and sequence checks, the `Content-Type` parsed as a MIME message, an exit
stack per request. The routes here declare few kinds of parameter (the request, path values, one
query model, one JSON body), so a `Binder`, built once per route from FastAPI's own analysis of the
endpoint, reads exactly those and validates them with the same fields FastAPI validates with.

It binds only what it can bind to the same values FastAPI would; on anything else (a validation
error, a body that is not plain JSON, a body that could not be read) it answers `None`, and the
route hands the request to FastAPI, which then gives its usual answer or error. So the error
paths stay FastAPI's, word for word, and only requests that succeed take this path.
`tests/api/test_binding.py` holds the two to the same arguments over a corpus of requests.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request

# Values of a `Content-Type` whose body FastAPI reads as JSON, written as clients send them.
_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})
_SEQUENCES = (list, tuple, set, frozenset, Sequence)


@dataclass(frozen=True)
class _Body:
    """The body parameter: its name, FastAPI field and whether a request must send it."""

    name: str
    field: Any
    required: bool


# What `_body` answers when FastAPI should read the body (an absent optional body binds None).
_UNBOUND: Any = object()


@dataclass(frozen=True)
class _QueryModel:
    """A query parameter model: its FastAPI field and, per model field, whether it repeats."""

    name: str
    field: Any
    fields: tuple[tuple[str, bool], ...]


class Binder:
    """Binds one route's arguments (see the module's docstring)."""

    def __init__(
        self,
        *,
        request_name: str | None,
        path: Sequence[tuple[str, Any]],
        query: _QueryModel | None,
        body: _Body | None,
    ) -> None:
        self._request_name = request_name
        self._path = tuple(path)
        self._query = query
        self._body = body

    @classmethod
    def for_route(cls, route: APIRoute) -> Binder | None:
        """The route's binder, or None when it declares a parameter this one does not bind."""
        dependant: Dependant = route.dependant
        if (
            dependant.dependencies
            or dependant.header_params
            or dependant.cookie_params
            or dependant.websocket_param_name
            or dependant.http_connection_param_name
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or len(dependant.query_params) > 1
            or len(dependant.body_params) > 1
        ):
            return None
        query = None
        if dependant.query_params:
            query = _query_model(dependant.query_params[0])
            if query is None:
                return None
        body = None
        if dependant.body_params:
            field = dependant.body_params[0]
            if isinstance(field.field_info, params.Form) or getattr(
                route, "_embed_body_fields", False
            ):
                return None
            body = _Body(field.name, field, field.field_info.is_required())
        path = [(field.alias, field) for field in dependant.path_params]
        return cls(request_name=dependant.request_param_name, path=path, query=query, body=body)

    async def bind(self, request: Request) -> dict[str, Any] | None:
        """The endpoint's keyword arguments; None to leave the request to FastAPI."""
        values: dict[str, Any] = {}
        path_params = request.path_params
        for name, field in self._path:
            value, errors = field.validate(path_params[name], values, loc=("path", name))
            if errors:
                return None
            values[field.name] = value
        if self._query is not None:
            value, errors = self._query.field.validate(
                _query_values(self._query, request), {}, loc=("query",)
            )
            if errors:
                return None
            values[self._query.name] = value
        if self._body is not None:
            value = await _body(self._body, request)
            if value is _UNBOUND:
                return None
            values[self._body.name] = value
        if self._request_name is not None:
            values[self._request_name] = request
        return values


def _query_model(field: Any) -> _QueryModel | None:
    """The query model a `Query()` parameter declares, if its fields are read by their names."""
    model = field.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    fields = []
    for name, info in model.model_fields.items():
        if info.alias not in (None, name) or info.validation_alias not in (None, name):
            return None
        fields.append((name, _is_sequence(info.annotation)))
    return _QueryModel(name=field.name, field=field, fields=tuple(fields))


def _is_sequence(annotation: Any) -> bool:
    """Whether a query field takes every value of a repeated parameter (`?tag=a&tag=b`)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_sequence(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(arg) for arg in typing.get_args(annotation))
    candidate = origin or annotation
    # Text is a `Sequence` too, but a text field takes one value.
    return (
        isinstance(candidate, type)
        and issubclass(candidate, _SEQUENCES)
        and not issubclass(candidate, (str, bytes))
    )


def _query_values(query: _QueryModel, request: Request) -> dict[str, Any]:
    """What FastAPI hands a query model: its fields' values (every value of a repeating one, the
    last of any other), and each other parameter, for the model's `extra` policy to judge."""
    received = request.query_params
    values: dict[str, Any] = {}
    if not received:
        return values
    names = set()
    for name, repeats in query.fields:
        names.add(name)
        if repeats:
            if listed := received.getlist(name):
                values[name] = listed
        elif (value := received.get(name)) is not None:
            values[name] = value
    extras: dict[str, list[str]] = {}
    for name, value in received.multi_items():
        if name not in names:
            extras.setdefault(name, []).append(value)
    for name, listed in extras.items():
        values[name] = listed[0] if len(listed) == 1 else listed
    return values


async def _body(body: _Body, request: Request) -> Any:
    """The validated body; `_UNBOUND` when FastAPI should refuse it (or bind what it reads
    again from the cached bytes). A body that cannot be read is FastAPI's 400 at once."""
    try:
        raw = await request.body()
    except Exception as exc:
        # What FastAPI raises for a body that could not be read (over the size limit: the
        # handler makes it a 413). Not FastAPI's handler: it would read the ended stream again
        # and wait for the client to leave.
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    if not raw:
        # FastAPI's default for an absent optional body, unvalidated (`validate_default` off).
        if body.required or body.field.field_info.validate_default:
            return _UNBOUND
        return copy.deepcopy(body.field.default)
    content_type = request.headers.get("content-type")
    if content_type is None or content_type.lower() not in _JSON_TYPES:
        return _UNBOUND
    try:
        decoded = json.loads(raw)
    except Exception:  # not JSON text (or too deep): FastAPI's error to give
        return _UNBOUND
    value, errors = body.field.validate(decoded, {}, loc=("body",))
    return _UNBOUND if errors else value
