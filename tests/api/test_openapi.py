"""The OpenAPI document says exactly what the server sends (DESIGN.md §4-§5), so a generated client
and a contract tester agree with it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.factories import JSON
from todo_api.errors import (
    AppError,
    BodyTooLarge,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InternalError,
    InvalidParameter,
    PreconditionFailed,
    RateLimited,
    ServiceUnavailable,
    SyncHorizonPassed,
    TaskNotFound,
    Unauthorized,
    UnsupportedMediaType,
)

PROBLEM_REF = "#/components/schemas/Problem"
TASK_REF = "#/components/schemas/TaskPublic"
LIST = "/api/{user_id}/tasks"
ITEM = "/api/{user_id}/tasks/{task_id}"
COMPLETE = "/api/{user_id}/tasks/{task_id}/complete"
STATS = "/api/{user_id}/tasks/stats"

# Every /api operation, with its success status and the request body schema it takes (if any).
API_OPERATIONS: dict[tuple[str, str], tuple[str, str | None]] = {
    ("get", LIST): ("200", None),
    ("post", LIST): ("201", "TaskCreate"),
    ("get", ITEM): ("200", None),
    ("put", ITEM): ("200", "TaskUpdate"),
    ("patch", ITEM): ("200", "TaskUpdate"),
    ("delete", ITEM): ("204", None),
    ("patch", COMPLETE): ("200", "TaskCompletion"),
    ("delete", LIST): ("200", None),
    ("get", STATS): ("200", None),
}
# The error each documented status stands for.
ERRORS_BY_STATUS: dict[int, type[AppError]] = {
    error.status: error
    for error in (
        InvalidParameter,
        Unauthorized,
        Forbidden,
        TaskNotFound,
        IdempotencyKeyInUse,
        SyncHorizonPassed,
        PreconditionFailed,
        BodyTooLarge,
        UnsupportedMediaType,
        IdempotencyKeyReused,
        RateLimited,
        InternalError,
        ServiceUnavailable,
    )
}
OPERATION_IDS = [f"{method.upper()} {path}" for method, path in API_OPERATIONS]


@pytest.fixture
async def document(client: httpx.AsyncClient) -> JSON:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: JSON = response.json()
    return body


def operation(document: JSON, method: str, path: str) -> JSON:
    op: JSON = document["paths"][path][method]
    return op


def all_operations(document: JSON) -> list[tuple[str, str, JSON]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    ]


def refs_in(schema: Any) -> set[str]:
    """Every `$ref` reachable in `schema` (without following them)."""
    if isinstance(schema, dict):
        found = {schema["$ref"]} if isinstance(schema.get("$ref"), str) else set()
        return found.union(*(refs_in(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(refs_in(value) for value in schema))
    return set()


def has_examples(schema: JSON) -> bool:
    """The schema, or one of its `anyOf`/`oneOf` branches, carries an example."""
    if "examples" in schema or "example" in schema:
        return True
    branches: list[JSON] = schema.get("anyOf") or schema.get("oneOf") or []
    return any(has_examples(branch) for branch in branches)


class TestDocument:
    async def test_is_openapi_3_1(self, document: JSON) -> None:
        assert document["openapi"].startswith("3.1.")

    async def test_lists_exactly_the_api_operations(self, document: JSON) -> None:
        api = {
            (method, path)
            for method, path, _ in all_operations(document)
            if path.startswith("/api/")
        }

        assert api == set(API_OPERATIONS)

    async def test_422_is_declared_only_for_a_reused_idempotency_key(self, document: JSON) -> None:
        """Validation failures are 400s; FastAPI's default 422 is declared nowhere."""
        declaring = {
            (m, p): op["responses"]["422"]
            for m, p, op in all_operations(document)
            if "422" in op["responses"]
        }

        assert set(declaring) == {
            ("post", "/api/{user_id}/tasks"),
            ("patch", "/api/{user_id}/tasks/{task_id}/complete"),
        }
        for response in declaring.values():
            [media_type] = response["content"]
            assert media_type == "application/problem+json"
            example = response["content"][media_type]["example"]
            assert example["type"] == "/problems/idempotency-key-reused"

    async def test_idempotent_operations_document_the_key(self, document: JSON) -> None:
        for method, path in [
            ("post", "/api/{user_id}/tasks"),
            ("patch", "/api/{user_id}/tasks/{task_id}/complete"),
        ]:
            operation = document["paths"][path][method]
            names = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
            assert "Idempotency-Key" in names
            assert "409" in operation["responses"]

    async def test_every_operation_has_a_summary(self, document: JSON) -> None:
        missing = [(m, p) for m, p, op in all_operations(document) if not op.get("summary")]

        assert missing == []

    async def test_problem_schema_replaces_fastapis_validation_error(self, document: JSON) -> None:
        schemas = document["components"]["schemas"]

        assert "Problem" in schemas
        assert "HTTPValidationError" not in schemas
        assert "ValidationError" not in schemas
        assert set(schemas["Problem"]["required"]) == {"type", "title", "status"}
        assert PROBLEM_REF not in refs_in(schemas["Problem"])

    async def test_every_schema_property_carries_an_example(self, document: JSON) -> None:
        missing = [
            f"{name}.{prop}"
            for name, schema in document["components"]["schemas"].items()
            if "examples" not in schema
            for prop, prop_schema in schema.get("properties", {}).items()
            if not has_examples(prop_schema)
        ]

        assert missing == []

    async def test_every_ref_resolves(self, document: JSON) -> None:
        schemas = document["components"]["schemas"]
        refs = refs_in(document["paths"]) | refs_in(schemas)

        unresolved = {
            ref for ref in refs if ref.removeprefix("#/components/schemas/") not in schemas
        }

        assert unresolved == set()


@pytest.mark.parametrize(("method", "path"), list(API_OPERATIONS), ids=OPERATION_IDS)
class TestApiOperation:
    async def test_declares_400_500_and_503_as_problems(
        self, document: JSON, method: str, path: str
    ) -> None:
        responses = operation(document, method, path)["responses"]

        for status in ("400", "500", "503"):
            content = responses[status]["content"]
            assert list(content) == ["application/problem+json"], status
            assert content["application/problem+json"]["schema"] == {"$ref": PROBLEM_REF}

    async def test_every_error_is_a_problem_whose_example_has_its_status(
        self, document: JSON, method: str, path: str
    ) -> None:
        responses = operation(document, method, path)["responses"]

        for status, response in responses.items():
            if int(status) < 400:
                continue
            problem = response["content"]["application/problem+json"]
            assert problem["schema"] == {"$ref": PROBLEM_REF}, status
            assert problem["example"]["status"] == int(status)

    async def test_every_problem_example_is_what_the_server_sends(
        self, document: JSON, method: str, path: str
    ) -> None:
        # One source: the documented type, title and detail are the error class's own.
        responses = operation(document, method, path)["responses"]

        for status, response in responses.items():
            if int(status) < 400:
                continue
            example = response["content"]["application/problem+json"]["example"]
            error = ERRORS_BY_STATUS[int(status)]
            sent = error.example()
            assert response["description"] == error.description, status
            assert (example["type"], example["title"]) == (sent.type, sent.title), status
            assert example["detail"] == sent.detail, status

    async def test_503_declares_retry_after(self, document: JSON, method: str, path: str) -> None:
        response = operation(document, method, path)["responses"]["503"]

        assert response["headers"]["Retry-After"]["schema"] == {"type": "integer"}

    async def test_declares_404_exactly_when_it_names_a_task(
        self, document: JSON, method: str, path: str
    ) -> None:
        responses = operation(document, method, path)["responses"]

        assert ("404" in responses) is ("{task_id}" in path)

    async def test_declares_415_exactly_when_it_takes_a_body(
        self, document: JSON, method: str, path: str
    ) -> None:
        op = operation(document, method, path)
        _, body_schema = API_OPERATIONS[(method, path)]

        assert ("requestBody" in op) is (body_schema is not None)
        assert ("415" in op["responses"]) is (body_schema is not None)

    async def test_declares_only_its_success_status(
        self, document: JSON, method: str, path: str
    ) -> None:
        responses = operation(document, method, path)["responses"]
        success, _ = API_OPERATIONS[(method, path)]

        assert [status for status in responses if status.startswith("2")] == [success]


@pytest.mark.parametrize(
    ("method", "path", "schema"),
    [(m, p, body) for (m, p), (_, body) in API_OPERATIONS.items() if body is not None],
)
class TestRequestBody:
    async def test_body_is_json_of_its_schema(
        self, document: JSON, method: str, path: str, schema: str
    ) -> None:
        content = operation(document, method, path)["requestBody"]["content"]

        assert list(content) == ["application/json"]
        assert refs_in(content["application/json"]) == {f"#/components/schemas/{schema}"}


class TestSuccessResponses:
    async def test_create_declares_201_with_location_and_the_task(self, document: JSON) -> None:
        created = operation(document, "post", LIST)["responses"]["201"]

        assert created["headers"]["Location"]["schema"] == {"type": "string"}
        assert created["content"]["application/json"]["schema"] == {"$ref": TASK_REF}

    async def test_delete_declares_204_without_content(self, document: JSON) -> None:
        deleted = operation(document, "delete", ITEM)["responses"]["204"]

        assert "content" not in deleted

    async def test_list_declares_an_array_of_tasks_or_tombstones(self, document: JSON) -> None:
        listed = operation(document, "get", LIST)["responses"]["200"]

        schema = listed["content"]["application/json"]["schema"]
        assert schema["type"] == "array"
        tombstone_ref = "#/components/schemas/TaskTombstone"
        assert schema["items"] == {"anyOf": [{"$ref": TASK_REF}, {"$ref": tombstone_ref}]}
        tombstone = document["components"]["schemas"]["TaskTombstone"]
        assert set(tombstone["required"]) == {"id", "deleted", "deleted_at", "updated_at"}

    @pytest.mark.parametrize(
        ("method", "path"), [("get", ITEM), ("put", ITEM), ("patch", ITEM), ("patch", COMPLETE)]
    )
    async def test_single_task_operations_declare_the_task(
        self, document: JSON, method: str, path: str
    ) -> None:
        ok = operation(document, method, path)["responses"]["200"]

        assert ok["content"] == {"application/json": {"schema": {"$ref": TASK_REF}}}

    @pytest.mark.parametrize("path", ["/health", "/health/live"])
    async def test_health_declares_its_body(self, document: JSON, path: str) -> None:
        ok = operation(document, "get", path)["responses"]["200"]

        assert ok["content"] == {
            "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
        }


class TestInteractiveDocs:
    @pytest.mark.parametrize(("path", "marker"), [("/docs", "swagger-ui"), ("/redoc", "redoc")])
    async def test_docs_page_is_html_pointing_at_the_document(
        self, client: httpx.AsyncClient, path: str, marker: str
    ) -> None:
        response = await client.get(path)

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert marker in response.text
        assert "/openapi.json" in response.text


LIST_PARAMETERS = [
    "completed",
    "priority",
    "tag",
    "q",
    "due_before",
    "due_after",
    "overdue",
    "updated_since",
    "include_deleted",
    "sort",
    "limit",
    "cursor",
]


class TestListDocumentation:
    async def test_every_list_parameter_is_described(self, document: JSON) -> None:
        parameters = {
            p["name"]: p
            for p in operation(document, "get", LIST)["parameters"]
            if p["in"] == "query"
        }

        assert list(parameters) == LIST_PARAMETERS
        assert all(p.get("description") for p in parameters.values())
        assert not any(p.get("required") for p in parameters.values())

    async def test_repeatable_parameters_are_arrays(self, document: JSON) -> None:
        parameters = {p["name"]: p for p in operation(document, "get", LIST)["parameters"]}

        assert parameters["priority"]["schema"]["type"] == "array"
        assert parameters["priority"]["schema"]["items"]["enum"] == ["low", "medium", "high"]
        assert parameters["tag"]["schema"]["type"] == "array"

    async def test_sort_and_limit_state_their_choices(self, document: JSON) -> None:
        parameters = {
            p["name"]: p["schema"] for p in operation(document, "get", LIST)["parameters"]
        }

        assert parameters["sort"]["default"] == "-created_at"
        assert set(parameters["sort"]["enum"]) == {
            f"{sign}{field}"
            for sign in ("", "-")
            for field in ("created_at", "updated_at", "due_at", "priority", "title")
        }
        assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 500)
        assert parameters["limit"]["default"] == 100

    async def test_the_list_declares_its_link_header(self, document: JSON) -> None:
        headers = operation(document, "get", LIST)["responses"]["200"]["headers"]

        assert list(headers) == ["Link"]
        assert 'rel="next"' in headers["Link"]["description"]

    async def test_tasks_show_the_new_fields(self, document: JSON) -> None:
        task = document["components"]["schemas"]["TaskPublic"]

        assert {"priority", "due_at", "tags", "completed_at"} <= set(task["properties"])
        assert {"priority", "due_at", "tags", "completed_at"} <= set(task["required"])
        create = document["components"]["schemas"]["TaskCreate"]["properties"]
        assert create["priority"]["enum"] == ["low", "medium", "high"]
        assert create["priority"]["default"] == "medium"

    async def test_clearing_requires_completed_true(self, document: JSON) -> None:
        [parameter] = operation(document, "delete", LIST)["parameters"][1:]

        assert parameter["name"] == "completed"
        assert parameter["required"] is True
        assert parameter["schema"]["enum"] == [True]
