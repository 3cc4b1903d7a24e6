"""``python -m runs.bench.child TASK_JSON RESULT_PATH``: one method or section of the benchmark,
in a process of its own, so that its peak memory is its own; ``runs.bench.__main__`` starts it.

TASK_JSON is the run's settings with ``method`` (the name to run) added; the result is written
to RESULT_PATH as JSON: ``{"skipped": reason}`` where the method's ``missing()`` gives one, else
what its ``run(task)`` returns, with this process's peak RSS and platform added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from runs.bench import METHODS, SECTIONS, common


def main(argv: list[str]) -> None:
    task_json, result_path = argv
    task = json.loads(task_json)
    name = task["method"]
    reason = METHODS[name].missing() if name in METHODS else None
    if reason:
        result = {"skipped": reason}
    else:
        result = {**METHODS, **SECTIONS}[name].run(task)
        result.update(common.process_info())
    Path(result_path).write_text(json.dumps(common.json_safe(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
