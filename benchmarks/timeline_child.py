"""`python -m benchmarks.timeline_child CONFIG OUT`: one snsync cycle in this process, as
`snsync run --once` runs it, recording a timeline to OUT (JSON): every HTTP answer (service,
method, path, start and end, from a response hook on the HTTP layer's sessions), every write
result (object type, action, status, when it came back), the moment planning ended (the
engine's "to apply" progress event) and the plan's waves (which item ran in which wave).

Nothing in snsync is patched: the hooks are the ones `-vv` request tracing uses, the callbacks
the ones the CLI's progress bar uses."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from benchmarks.endpoints import endpoint
from snsync.config import load_config
from snsync.connections import connect
from snsync.engine.cycle import TO_APPLY, run_cycle
from snsync.http import HttpClient
from snsync.model import PlanItem, Result
from snsync.state import State


class Recorder:
    """Timestamps (seconds since the cycle started) of answers, results and phase marks."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.requests: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.perf_counter() - self.started

    def hook(self, http: HttpClient) -> None:
        """Record every answer of `http`'s sessions (each worker's session shares the list)."""
        service = http.service

        def on_answer(response: requests.Response, *_: Any, **__: Any) -> None:
            end = self.now()
            request = response.request
            path = urlsplit(str(request.url)).path
            with self._lock:
                self.requests.append(
                    {
                        "service": service,
                        "endpoint": endpoint(str(request.method), path),
                        "start": end - response.elapsed.total_seconds(),
                        "end": end,
                        "status": response.status_code,
                    }
                )

        http.session.hooks["response"].append(on_answer)

    def progress(self, what: str, _count: int) -> None:
        if what == TO_APPLY:
            self.marks["planned"] = self.now()

    def on_result(self, result: Result) -> None:
        item = result.item
        with self._lock:
            self.results.append(
                {
                    "key": item_key(item),
                    "type": str(item.object_type),
                    "action": item.action.value,
                    "status": result.status.value,
                    "writes": item.writes,
                    "at": self.now(),
                }
            )


def item_key(item: PlanItem) -> str:
    return f"{item.object_type}|{item.action.value}|{item.directory_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timeline_child")
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    recorder = Recorder()
    conns = connect(config, read_only=False)
    recorder.hook(conns.graph_http)
    recorder.hook(conns.servicenow_http)
    state = State(config.state.path)
    try:
        report = run_cycle(
            config, conns, state, progress=recorder.progress, on_result=recorder.on_result
        )
    finally:
        conns.close()
        state.close()
    recorder.marks["done"] = recorder.now()
    waves = [[item_key(i) for i in wave] for wave in report.planned.waves]
    data = {
        "requests": recorder.requests,
        "results": recorder.results,
        "marks": recorder.marks,
        "waves": waves,
        "concurrency": config.servicenow.max_concurrency,
    }
    args.out.write_text(json.dumps(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
