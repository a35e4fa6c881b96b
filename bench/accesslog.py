"""What one access line costs a worker: CPU per line, the request's part (handing its fields to
the queue) and the writer thread's (formatting and writing the line), JSON and text.

`make bench` measures the access log as the difference between two served runs, which on a
shared 2-core machine is smaller than the run-to-run spread; this counts the process's CPU
(all threads) over many lines instead. Run: `.venv/bin/python bench/accesslog.py`.
"""

from __future__ import annotations

import logging
import tempfile
import time

from todo_api.observability import accesslog

LINES = 200_000


def cpu_per_line(*, json: bool | None) -> float:
    """µs of process CPU per `log_access` call, written through a writer (None: no writer, and
    the access logger off, as with LOG_LEVEL=WARNING)."""
    with tempfile.TemporaryFile("w") as stream:
        handler = logging.StreamHandler(stream)
        writer = accesslog.AccessLogWriter(handler, json=json) if json is not None else None
        accesslog.install_writer(writer)
        logging.getLogger(accesslog.ACCESS_LOGGER).setLevel(logging.WARNING)
        began = time.process_time()
        for index in range(LINES):
            accesslog.log_access(
                request_id="9f0c2a4e6b8d4f1a3c5e7a9b1d3f5a7c",
                method="GET",
                route="/api/{user_id}/tasks/{task_id}",
                status=200,
                duration_ms=1.0 + index % 7,
                client="10.0.0.1:51234",
                user_id="user0042",
            )
        accesslog.flush_access_log()
        spent = time.process_time() - began
        accesslog.install_writer(None)
    return spent / LINES * 1e6


def main() -> None:
    off = cpu_per_line(json=None)
    for name, json in (("json", True), ("text", False)):
        line = cpu_per_line(json=json)
        print(f"access line, {name}: {line:.2f} us of CPU ({line - off:.2f} us over none)")
    print(f"no access line (the call alone): {off:.2f} us")


if __name__ == "__main__":
    main()
