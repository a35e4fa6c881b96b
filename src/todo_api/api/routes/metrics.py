"""`GET /metrics`: the process's metrics for a Prometheus scrape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client.exposition import choose_encoder
from starlette.responses import Response

from todo_api.auth.guard import check_static_token
from todo_api.observability.metrics import METRICS_PATH, enable_metrics

router = APIRouter()


@router.get(METRICS_PATH, include_in_schema=False)
async def read_metrics(request: Request) -> Response:
    """The process's metrics, in Prometheus text format (or OpenMetrics, if asked for)."""
    check_static_token(request, request.app.state.settings.metrics_token)
    metrics = enable_metrics()
    database = request.app.state.database
    metrics.sample_pools(database.pool_usage() if database is not None else ())
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(metrics.exposition_registry()), media_type=content_type)
