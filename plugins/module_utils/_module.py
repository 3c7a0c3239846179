# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the base class of every API module.

Not a public API; it may change without notice.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


class ApiModule(AnsibleModule):
    """AnsibleModule plus the shared connection options and uniform failure reporting."""

    def __init__(self, argument_spec, connection_spec, **kwargs):
        spec = dict(connection_spec)
        spec.update(argument_spec)
        kwargs.setdefault("supports_check_mode", True)
        super().__init__(argument_spec=spec, **kwargs)

    def fail_on_problem(self, problem):
        """Stop before any request when input validation found a problem."""
        if problem:
            self.fail_json(msg=problem)

    def fail_api(self, error, message=None, **result):
        """Fail with one readable sentence plus the normalised error fields."""
        result.update(error.to_result())
        self.fail_json(msg=message or error.message, **result)
