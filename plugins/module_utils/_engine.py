# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the one write engine every module that writes runs on.

A module subclasses `ManagedObject` for its object type, fills in a few hooks and calls
`run()`, which reads the object once, asks the module's `present()` or `absent()` what must
change, writes only when something must and not in check mode, and reports `changed`, the
object's view, the module's own result keys and the `--diff`.

A create or delete whose answer was lost (`ApiError.outcome_unknown`) is resolved here and
only here: the object is read again (after an answer that timed out, until the request's retry
budget is used up, as the create may still land). A create is sent a second time only for an object
type whose identity is a unique name the API refuses twice (`create_is_unique`), and only after the
re-read found nothing, so the run recovers from a dropped connection and can never make two objects.
An object whose secret only the create's answer shows (`secret_shown_once`) and that the re-read
finds is deleted and created once more, so no run ends with a secret nobody holds.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import time

from ansible_collections.karto.supabase_mail.plugins.module_utils._diff import (
    SECRET_DIFFERENT,
    SECRET_UNKNOWN,
    SECRET_UNMANAGED,
    build_diff,
    should_write_secret,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError


def verification_argument_spec():
    """The options of a module that can wait for its object to be verified (documented per module)."""
    return dict(
        wait_for_verification=dict(type="bool", default=False),
        verification_timeout=dict(type="int", default=300),
        poll_interval=dict(type="int", default=10),
    )


# What `absent()` returns to remove the object (any dict means "update these fields").
DELETE = "delete"

# Seconds between re-reads while a create whose answer timed out may still land.
LOST_CREATE_POLL_SECONDS = 0.5

# The write a run makes, as `ManagedObject.action` tells the hooks that run after the plan.
CREATE = "create"
UPDATE = "update"


def sentence(text):
    """`text` ending in a full stop, so that a further sentence can follow it."""
    text = str(text).rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def lost_create_budget(client):
    """Seconds after sending a create within which its late landing is still looked for: the
    client's retry budget (2 x timeout), 0 for a client without one."""
    retry = getattr(client, "retry", None)
    return float(getattr(retry, "budget", 0.0) or 0.0)


class ManagedObject:
    """One API object a module keeps in a stated shape; subclass it and fill in the hooks.

    Reading: `find()` returns the current object or None (one read; list and filter if the API
    has no lookup by id). Planning: `present(current)` and `absent(current)` return the fields
    to send (a dict, empty for none) or `DELETE`; with `present` and no current object the
    engine creates it. Writing: `create(changes)`, `update(current, changes)` and
    `delete(current)`; check mode calls `predict(current, changes)` instead. Reporting:
    `view(obj)` is the object under `result_key` and in the diff, `report(after, changes)`
    adds the module's other result keys.

    Hooks may attach values to `self.result` (a secret shown once on create) and may drop keys
    from `changes` that the write proved were already in place: `changed` is decided after it.
    """

    # Result key holding view(after): "smtp", "user", "sender" ...
    result_key = "object"
    # A write-only secret: the option holding it and the API field it is sent as. The diff shows
    # it only as <hidden, changed|unchanged>; "written" means the field was in the sent changes.
    secret_option = None
    secret_field = None
    # The option that says when to send the secret (always | on_change | on_create).
    secret_policy_option = "update_password"
    # True when the API refuses a second create of the same name (the name is the identity): a create
    # whose answer was lost and that a re-read does not find is then sent once more, within the run.
    create_is_unique = False
    # True when only the create's answer carries the object's secret (an API key shown once) and the
    # object can be deleted: a create whose answer was lost and that the re-read finds is deleted and
    # sent once more, so the run ends holding the secret instead of an object nobody has the key of.
    secret_shown_once = False

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params
        self.result = {}
        self.action = None

    # --- hooks: reading -----------------------------------------------------------
    @property
    def label(self):
        """How error messages name the object, e.g. "the SMTP user karto-supabase"."""
        return "the object"

    def find(self):
        """The current object, or None when it does not exist."""
        raise NotImplementedError

    # --- hooks: planning, one per state -------------------------------------------
    def present(self, current):
        """The fields to send so the object matches the input; `current` is None to create."""
        raise NotImplementedError

    def absent(self, current):
        """`DELETE` when there is an object to remove; a module whose 'absent' is an update
        (turning a setting off) returns the fields to send instead."""
        return DELETE if current is not None else {}

    # --- hooks: writing ---------------------------------------------------------------
    def create(self, changes):
        """Create the object from `changes`; return it as `find()` would."""
        raise NotImplementedError

    def update(self, current, changes):
        """Send `changes`; return the object after the write."""
        raise NotImplementedError

    def delete(self, current):
        """Remove the object; a lost answer is settled by the engine with a re-read."""
        raise NotImplementedError

    def predict(self, current, changes):
        """The object as the write would leave it, for check mode (current is None on create)."""
        after = dict(current or {})
        after.update(changes)
        return after

    def on_lost_create(self, found, changes):
        """The create's answer was lost and the re-read found the object: return it, or fail
        when the answer carried something no read gives back (a once-shown secret)."""
        return found

    def settle(self, after):
        """Runs after the write step outside check mode, also when nothing was written; returns
        the object to report (e.g. after waiting for a verification)."""
        return after

    # --- helpers for settle() -------------------------------------------------------------
    def wait_until(self, found, done, reread, failure):
        """Re-read until `done(obj)` or the `verification_timeout` option runs out, sleeping
        `poll_interval` (never past the deadline); then `failure(obj)` gives the fail_json fields.
        One loop for every module that waits for a person (a verification link, DNS records)."""
        deadline = time.monotonic() + self.params["verification_timeout"]
        while not done(found):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.module.fail_json(**failure(found))
            time.sleep(min(self.params["poll_interval"], remaining))
            found = reread(found)
        return found

    # --- hooks: reporting ---------------------------------------------------------------
    def view(self, obj):
        """The object as the module returns it, never holding a secret; None when absent."""
        if obj is None:
            return None
        return {key: value for key, value in obj.items() if key != self.secret_field}

    def diff_view(self, obj):
        """The object as --diff shows it (defaults to the result view)."""
        return self.view(obj)

    def secret_stored(self, obj):
        """Whether `obj` holds the write-only secret (any existing object, by default)."""
        return obj is not None

    def report(self, after, changes):
        """Result keys besides changed, result_key and diff."""
        return {}

    # --- helpers for present() ------------------------------------------------------------
    def secret_verdict(self, current):
        """What the API lets us know about the stored secret, as a _diff.SECRET_* verdict.

        By default a new object has none and an existing one's cannot be read back; a module
        whose API exposes a comparable form (Supabase's HMAC) overrides it.
        """
        if self.secret_option is None or self.params.get(self.secret_option) is None:
            return SECRET_UNMANAGED
        return SECRET_DIFFERENT if current is None else SECRET_UNKNOWN

    def secret_changes(self, current):
        """{secret_field: value} when the secret must be sent under the update policy, else {}."""
        verdict = self.secret_verdict(current)
        policy = self.params.get(self.secret_policy_option) or "always"
        if should_write_secret(verdict, policy):
            return {self.secret_field: self.params[self.secret_option]}
        return {}

    # --- the engine -----------------------------------------------------------------------
    def run(self):
        """Read once, plan, write when needed and allowed, report; exits the module."""
        try:
            before = self.find()
            after, changes = self._apply(before)
            if not self.module.check_mode:
                after = self.settle(after)
        except ApiError as error:
            self.module.fail_api(error, self.client.explain(error))
            return  # fail_api exits; this keeps the names below bound for readers and linters
        self._exit(before, after, changes)

    def _exit(self, before, after, changes):
        result = dict(changed=self.action in (CREATE, DELETE) or bool(changes))
        result[self.result_key] = self.view(after)
        result.update(self.report(after, changes))
        result.update(self.result)
        if self.module._diff:
            result["diff"] = self.diff_result(before, after, changes)
        self.module.exit_json(**result)

    def diff_result(self, before, after, changes):
        """The `diff` result: before/after `diff_view`s with the secret masked. A module whose
        fields are long texts may return a list of text diffs instead (Ansible prints each unified)."""
        secret = None
        if self.secret_option is not None:
            secret = (self.secret_option, self.secret_stored(before), self.secret_stored(after),
                      self.secret_field in changes)
        return build_diff(self.diff_view(before), self.diff_view(after), secret=secret)

    def _apply(self, current):
        """(object after, changes sent) for the state asked; sets self.action."""
        wanted_absent = self.params.get("state", "present") == "absent"
        plan = self.absent(current) if wanted_absent else self.present(current)
        if plan == DELETE:
            if current is None:
                return None, {}
            self.action = DELETE
            if not self.module.check_mode:
                self._delete(current)
            return None, {}
        changes = dict(plan or {})
        if current is None and not wanted_absent:
            self.action = CREATE
            if self.module.check_mode:
                return self.predict(None, changes), changes
            return self._create(changes), changes
        if not changes:
            return current, changes
        self.action = UPDATE
        if self.module.check_mode:
            return self.predict(current, changes), changes
        return self.update(current, changes), changes

    def _create(self, changes):
        started = time.monotonic()
        try:
            return self.create(changes)
        except ApiError as error:
            if not error.outcome_unknown:
                raise
            # The create may have landed: look before anything else.
            found = self._find_after_lost_create(error, started)
            if found is None and self.create_is_unique:
                return self._create_again(changes, error)
            if found is None:
                self.module.fail_api(error, "%s A re-read does not find %s, so it was probably not created; "
                                            "the create was not sent again (that could make two): run the "
                                            "task again." % (sentence(self.client.explain(error)), self.label))
            if self.secret_shown_once:
                return self._replace_lost_secret(found, changes)
            return self.on_lost_create(found, changes)

    def _find_after_lost_create(self, error, started):
        """The object after a create whose answer was lost, or None. An answer that timed out may
        still come (the server works on), so unless a second create is safe (`create_is_unique`)
        the re-read is repeated until the request's retry budget since the create was sent is used
        up: a create that lands late is found in this run, and the run stays within its time bound."""
        found = self.find()
        if found is not None or self.create_is_unique or not error.timed_out:
            return found
        deadline = started + lost_create_budget(self.client)
        while found is None and time.monotonic() + LOST_CREATE_POLL_SECONDS <= deadline:
            time.sleep(LOST_CREATE_POLL_SECONDS)
            found = self.find()
        return found

    def _replace_lost_secret(self, found, changes):
        """The create landed, but its answer, the one place the secret was shown, was lost: delete
        what it made and create it once more, so the run ends holding the secret."""
        try:
            self.delete(found)
        except ApiError as error:
            self.module.warn("Deleting %s, whose secret was lost with the create's answer, failed: %s"
                             % (self.label, self.client.explain(error)))
            return self.on_lost_create(found, changes)
        self.module.warn("The answer to creating %s was lost, and with it the secret shown only once; what that "
                         "create made was deleted and %s created again: its new secret is in this result."
                         % (self.label, self.label))
        try:
            return self.create(changes)
        except ApiError as error:
            if not error.outcome_unknown:
                raise
            found = self.find()
            if found is None:
                self.module.fail_api(error, "%s The answer to creating %s was lost twice; the first one made was "
                                            "deleted, and a re-read does not find a second: run the task again."
                                     % (sentence(self.client.explain(error)), self.label))
            return self.on_lost_create(found, changes)

    def _create_again(self, changes, first_error):
        """The lost create is not there: send it once more. The API refuses a second object of the
        same name, so if the first create lands meanwhile this one fails and a re-read finds it."""
        try:
            return self.create(changes)
        except ApiError as error:
            found = self.find()
            if found is None:
                self.module.fail_api(error, "%s The first create's answer was lost (%s) and a second one failed; "
                                            "a re-read does not find %s: run the task again."
                                     % (sentence(self.client.explain(error)), first_error.message, self.label))
            return self.on_lost_create(found, changes)

    def _delete(self, current):
        try:
            self.delete(current)
        except ApiError as error:
            # A lost answer to a delete: gone on a re-read is success.
            if not error.outcome_unknown or self.find() is not None:
                raise
