"""Records when each task started and ended on each host, for benchmarks/run.py.

Enabled only by the benchmark (ANSIBLE_CALLBACKS_ENABLED=bench_timer with this folder in
ANSIBLE_CALLBACK_PLUGINS); writes one JSON list to $KARTO_BENCH_TIMINGS at the end of the run.
The timestamps are the controller's: from the worker starting the task on a host to its result,
so they include module transfer, interpreter start-up, imports and the module's own requests.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Per task and host start/end times, written as JSON for the benchmark
description:
  - Writes a JSON list of task, host, start, end and status to the file named by E(KARTO_BENCH_TIMINGS).
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._started = {}
        self._records = []

    def v2_runner_on_start(self, host, task):
        self._started[(task._uuid, host.get_name())] = time.monotonic()

    def _record(self, result, status):
        key = (result._task._uuid, result._host.get_name())
        started = self._started.pop(key, None)
        if started is not None:
            self._records.append({"task": result._task.get_name(), "action": result._task.action,
                                  "host": key[1], "start": started, "end": time.monotonic(), "status": status})

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("KARTO_BENCH_TIMINGS")
        if path:
            with open(path, "w") as handle:
                json.dump(self._records, handle)
