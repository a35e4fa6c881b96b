"""Reading what the service reports: its JSON log lines and its Prometheus samples."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.support.factories import JSON

Labels = dict[str, str]


def json_lines(text: str) -> list[JSON]:
    """Every line of `text` parsed as JSON (a line that does not parse fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def access_lines(records: list[JSON]) -> list[JSON]:
    return [record for record in records if record["logger"] == "todo_api.access"]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` whose labels include `labels` (0 when there is none)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                return float(found.value)
    return 0.0


def series_labels(text: str, name: str) -> list[Labels]:
    return [
        found.labels
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == name
    ]
