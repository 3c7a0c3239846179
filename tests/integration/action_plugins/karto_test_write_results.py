"""Test-only action: writes a string to a file on the controller without running a module.

`run_tasks` (tests/integration/playbook.py) ends each test play with it to hand the registered
results to the test. `ansible.builtin.copy` did the same through two module processes (stat and
copy), about 0.8 CPU-s per play; the args are templated by Ansible exactly as copy's were.
Found through ANSIBLE_ACTION_PLUGINS, which only run_tasks sets."""

import os

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dest, content = self._task.args["dest"], self._task.args["content"]
        descriptor = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        result.update(changed=False, dest=dest)
        return result
