"""Records each event it gets as one JSON line in $FIXTURE_EVENTS_FILE; fails on purpose
for executions named fail-N (the first N attempts of each event)."""

import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> None:
    path = os.environ["FIXTURE_EVENTS_FILE"]
    detail = event.get("detail") or {}
    name = str(detail.get("name", ""))
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")
    if name.startswith("fail-"):
        with open(path, encoding="utf-8") as f:
            seen = [json.loads(line)["detail"] for line in f]
        attempts = sum(1 for d in seen if (d["name"], d["status"]) == (name, detail["status"]))
        if attempts <= int(name.split("-")[1]):
            raise RuntimeError(f"attempt {attempts} fails")
