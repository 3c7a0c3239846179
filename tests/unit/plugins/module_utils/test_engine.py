"""The write engine against an in-memory object store: plan, write, check mode, lost answers, diff."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _engine
from ansible_collections.karto.supabase_mail.plugins.module_utils._diff import changed_fields
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError

SECRET = "S3cret-value-for-tests"


class Exited(Exception):
    """exit_json was called; `result` holds what the module returned."""

    def __init__(self, result):
        super().__init__("exit_json")
        self.result = result


class Failed(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class FakeModule:
    """The parts of ApiModule the engine and the modules' hooks use."""

    def __init__(self, params, check_mode=False, diff=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def exit_json(self, **result):
        raise Exited(result)

    def fail_json(self, **result):
        raise Failed(result)

    def fail_api(self, error, message=None, **result):
        result.update(error.to_result())
        self.fail_json(msg=message or error.message, **result)


class Store:
    """An in-memory API: objects by name, a journal of calls, and lost answers on demand."""

    def __init__(self, **objects):
        self.objects = {name: dict(obj) for name, obj in objects.items()}
        self.calls = []
        # "lose_answer": apply the write, then raise outcome_unknown; "drop": raise it without applying.
        self.faults = {}

    def _fault(self, op, apply):
        fault = self.faults.pop(op, None)
        if fault == "drop":
            raise ApiError("no answer to %s" % op, method="POST", outcome_unknown=True)
        apply()
        if fault == "lose_answer":
            raise ApiError("no answer to %s" % op, method="POST", outcome_unknown=True)
        if fault == "refuse":
            raise ApiError("%s refused" % op, status=400, code="BAD", method="POST")

    def explain(self, error):
        return "Explained: %s." % error.message

    def get(self, name):
        self.calls.append(("get", name))
        found = self.objects.get(name)
        return dict(found) if found else None

    def add(self, name, fields):
        self.calls.append(("add", name))
        self._fault("add", lambda: self.objects.__setitem__(name, dict(fields, name=name)))
        return dict(self.objects[name])

    def edit(self, name, fields):
        self.calls.append(("edit", name))
        self._fault("edit", lambda: self.objects[name].update(fields))
        return dict(self.objects[name])

    def remove(self, name):
        self.calls.append(("remove", name))
        self._fault("remove", lambda: self.objects.pop(name))

    def writes(self):
        return [call for call in self.calls if call[0] != "get"]


class Thing(_engine.ManagedObject):
    """A small object type with one write-only secret, as a provider module would write it."""

    result_key = "thing"
    secret_option = "secret"
    secret_field = "secret"

    @property
    def label(self):
        return "thing %s" % self.params["name"]

    def find(self):
        return self.client.get(self.params["name"])

    def present(self, current):
        changes = changed_fields(current or {}, {"colour": self.params["colour"]})
        changes.update(self.secret_changes(current))
        return changes

    def create(self, changes):
        return self.client.add(self.params["name"], changes)

    def update(self, current, changes):
        return self.client.edit(self.params["name"], changes)

    def delete(self, current):
        self.client.remove(self.params["name"])

    def predict(self, current, changes):
        return dict(super().predict(current, changes), name=self.params["name"])

    def view(self, obj):
        return None if obj is None else {"name": obj["name"], "colour": obj.get("colour")}

    def report(self, after, changes):
        return {"created": self.action == _engine.CREATE, "changed_fields": sorted(changes)}


def run(store, check_mode=False, diff=True, kind=Thing, **params):
    params = dict({"name": "t1", "state": "present", "colour": None, "secret": None,
                   "update_password": "on_create"}, **params)
    module = FakeModule(params, check_mode=check_mode, diff=diff)
    with pytest.raises((Exited, Failed)) as outcome:
        kind(module, store).run()
    return outcome.value


def test_create_then_rerun_is_a_no_op_with_one_read():
    store = Store()
    first = run(store, colour="red", secret=SECRET)
    assert isinstance(first, Exited)
    assert first.result["changed"] is True and first.result["created"] is True
    assert first.result["thing"] == {"name": "t1", "colour": "red"}
    assert first.result["changed_fields"] == ["colour", "secret"]
    assert store.objects["t1"]["secret"] == SECRET

    store.calls.clear()
    second = run(store, colour="red", secret=SECRET)
    assert second.result["changed"] is False and second.result["changed_fields"] == []
    assert store.calls == [("get", "t1")]


def test_update_sends_only_what_differs():
    store = Store(t1={"name": "t1", "colour": "red", "size": 3})
    outcome = run(store, colour="blue")
    assert outcome.result["changed"] is True and outcome.result["created"] is False
    assert outcome.result["changed_fields"] == ["colour"]
    assert store.writes() == [("edit", "t1")]
    assert store.objects["t1"] == {"name": "t1", "colour": "blue", "size": 3}


def test_secret_follows_the_update_policy():
    store = Store(t1={"name": "t1", "colour": "red"})
    on_create = run(store, colour="red", secret=SECRET)
    assert on_create.result["changed"] is False and store.writes() == []
    always = run(store, colour="red", secret=SECRET, update_password="always")
    assert always.result["changed_fields"] == ["secret"]
    assert store.objects["t1"]["secret"] == SECRET


def test_delete_and_absent_when_already_gone():
    store = Store(t1={"name": "t1", "colour": "red"})
    gone = run(store, state="absent")
    assert gone.result["changed"] is True and gone.result["thing"] is None
    assert "t1" not in store.objects
    again = run(store, state="absent")
    assert again.result["changed"] is False and again.result["thing"] is None
    assert store.writes() == [("remove", "t1")]


@pytest.mark.parametrize("objects, params, expected", [
    ({}, {"colour": "red"}, {"name": "t1", "colour": "red"}),
    ({"t1": {"name": "t1", "colour": "red"}}, {"colour": "blue"}, {"name": "t1", "colour": "blue"}),
    ({"t1": {"name": "t1", "colour": "red"}}, {"state": "absent"}, None),
])
def test_check_mode_predicts_and_writes_nothing(objects, params, expected):
    store = Store(**objects)
    before = {name: dict(obj) for name, obj in store.objects.items()}
    outcome = run(store, check_mode=True, **params)
    assert outcome.result["changed"] is True
    assert outcome.result["thing"] == expected
    assert store.writes() == [] and store.objects == before


def test_lost_create_answer_found_on_reread_is_success_without_a_second_create():
    store = Store()
    store.faults["add"] = "lose_answer"
    outcome = run(store, colour="red")
    assert isinstance(outcome, Exited)
    assert outcome.result["changed"] is True and outcome.result["created"] is True
    assert outcome.result["thing"] == {"name": "t1", "colour": "red"}
    assert store.calls == [("get", "t1"), ("add", "t1"), ("get", "t1")]


def test_lost_create_not_found_fails_clearly_and_never_creates_twice():
    store = Store()
    store.faults["add"] = "drop"
    outcome = run(store, colour="red")
    assert isinstance(outcome, Failed)
    message = outcome.result["msg"]
    assert message.startswith("Explained: no answer to add.")
    assert "does not find thing t1" in message and "not sent again" in message
    assert [call for call in store.calls if call[0] == "add"] == [("add", "t1")]
    assert store.objects == {}


def test_hook_may_refuse_a_lost_create_whose_answer_carried_a_once_shown_value():
    class OnceShown(Thing):
        def on_lost_create(self, found, changes):
            self.module.fail_json(msg="created, but its key was in the lost answer")

    store = Store()
    store.faults["add"] = "lose_answer"
    outcome = run(store, kind=OnceShown, colour="red")
    assert isinstance(outcome, Failed) and "lost answer" in outcome.result["msg"]
    assert len([call for call in store.calls if call[0] == "add"]) == 1


def test_lost_delete_answer_is_success_when_the_object_is_gone():
    store = Store(t1={"name": "t1"})
    store.faults["remove"] = "lose_answer"
    outcome = run(store, state="absent")
    assert isinstance(outcome, Exited) and outcome.result["changed"] is True
    assert store.calls == [("get", "t1"), ("remove", "t1"), ("get", "t1")]


def test_lost_delete_answer_fails_when_the_object_is_still_there():
    store = Store(t1={"name": "t1"})
    store.faults["remove"] = "drop"
    outcome = run(store, state="absent")
    assert isinstance(outcome, Failed)
    assert outcome.result["msg"] == "Explained: no answer to remove."


def test_api_errors_fail_through_the_clients_explanation():
    store = Store(t1={"name": "t1", "colour": "red"})
    store.faults["edit"] = "refuse"
    outcome = run(store, colour="blue")
    assert isinstance(outcome, Failed)
    assert outcome.result["msg"] == "Explained: edit refused."
    assert outcome.result["status"] == 400 and outcome.result["error_code"] == "BAD"


def test_diff_shows_fields_and_hides_the_secret():
    store = Store()
    created = run(store, colour="red", secret=SECRET)
    assert created.result["diff"] == {
        "before": {"secret": None},
        "after": {"name": "t1", "colour": "red", "secret": "<hidden, changed>"},
    }
    rotated = run(store, colour="red", secret=SECRET + "2", update_password="always")
    assert rotated.result["diff"]["before"]["secret"] == "<hidden>"
    assert rotated.result["diff"]["after"]["secret"] == "<hidden, changed>"
    same = run(store, colour="blue", secret=SECRET)
    assert same.result["diff"]["before"] == {"name": "t1", "colour": "red", "secret": "<hidden, unchanged>"}
    assert same.result["diff"]["after"] == {"name": "t1", "colour": "blue", "secret": "<hidden, unchanged>"}
    for outcome in (created, rotated, same):
        assert SECRET not in repr(outcome.result)
    assert "diff" not in run(store, diff=False).result


def test_hooks_attach_once_shown_values_and_may_declare_no_change_after_a_write():
    class KeyOnce(Thing):
        def create(self, changes):
            created = super().create(changes)
            self.result["key"] = "shown-once"
            return created

    class SamePasswordIsNoChange(Thing):
        def update(self, current, changes):
            try:
                return super().update(current, changes)
            except ApiError as error:
                if error.status != 400:
                    raise
                # Like Mailgun: a PUT of the same password is refused with 400, meaning "no change".
                changes.pop("secret")
                return current

    store = Store()
    first = run(store, kind=KeyOnce, colour="red")
    assert first.result["key"] == "shown-once"
    assert "key" not in run(store, kind=KeyOnce, colour="red").result

    store.faults["edit"] = "refuse"
    same = run(store, kind=SamePasswordIsNoChange, colour="red", secret=SECRET, update_password="always")
    assert isinstance(same, Exited)
    assert same.result["changed"] is False and same.result["changed_fields"] == []
    assert same.result["diff"]["after"]["secret"] == "<hidden, unchanged>"


def test_absent_may_be_an_update_for_an_object_that_always_exists():
    class Setting(Thing):
        def absent(self, current):
            return {"colour": ""} if current.get("colour") else {}

    store = Store(t1={"name": "t1", "colour": "red"})
    off = run(store, kind=Setting, state="absent")
    assert off.result["changed"] is True and off.result["changed_fields"] == ["colour"]
    assert store.objects["t1"]["colour"] == ""
    assert run(store, kind=Setting, state="absent").result["changed"] is False


def test_settle_runs_after_the_write_but_not_in_check_mode():
    class Waits(Thing):
        def settle(self, after):
            return dict(after, colour="settled")

    store = Store()
    assert run(store, kind=Waits, colour="red", check_mode=True).result["thing"]["colour"] == "red"
    assert run(store, kind=Waits, colour="red").result["thing"]["colour"] == "settled"


def test_default_view_leaves_the_secret_field_out():
    class Bare(Thing):
        def view(self, obj):
            return _engine.ManagedObject.view(self, obj)

    store = Store()
    outcome = run(store, kind=Bare, colour="red", secret=SECRET)
    assert outcome.result["thing"] == {"name": "t1", "colour": "red"}
    assert SECRET not in repr(outcome.result)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def waiting_object(monkeypatch, timeout, poll):
    clock = FakeClock()
    monkeypatch.setattr(_engine.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(_engine.time, "sleep", clock.sleep)
    obj = _engine.ManagedObject(FakeModule({"verification_timeout": timeout, "poll_interval": poll}), client=None)
    return obj, clock


def test_wait_until_rereads_until_done(monkeypatch):
    obj, clock = waiting_object(monkeypatch, timeout=60, poll=10)
    reads = iter([{"verified": False}, {"verified": True}])
    found = obj.wait_until({"verified": False}, done=lambda o: o["verified"], reread=lambda o: next(reads),
                           failure=lambda o: {"msg": "never"})
    assert found == {"verified": True} and clock.sleeps == [10, 10]


def test_wait_until_never_sleeps_past_the_deadline_and_fails_with_the_last_read(monkeypatch):
    obj, clock = waiting_object(monkeypatch, timeout=25, poll=10)
    with pytest.raises(Failed) as failed:
        obj.wait_until({"n": 0}, done=lambda o: False, reread=lambda o: {"n": o["n"] + 1},
                       failure=lambda o: {"msg": "still not verified", "seen": o["n"]})
    assert clock.sleeps == [10, 10, 5] and clock.now == 1025.0
    assert failed.value.result == {"msg": "still not verified", "seen": 3}


# --- lost answers the fault matrix found (issue 12) -------------------------------------------------------

class LateStore(Store):
    """A create that times out on the client and lands on the server only after `lands_after` more
    reads (None: never); the store's client budget is `budget` seconds, as ApiClient.retry.budget."""

    def __init__(self, lands_after=None, budget=6.0, **objects):
        super().__init__(**objects)
        self.retry = type("Retry", (), {"budget": budget})()
        self.lands_after = lands_after
        self.pending = None

    def add(self, name, fields):
        if self.pending is None and "time_out" == self.faults.get("add"):
            self.faults.pop("add")
            self.calls.append(("add", name))
            self.pending = (name, fields)
            raise ApiError("no answer to add (read timed out)", method="POST", outcome_unknown=True, timed_out=True)
        return super().add(name, fields)

    def get(self, name):
        if self.pending is not None and self.lands_after is not None:
            if self.lands_after == 0:
                pending_name, fields = self.pending
                self.objects[pending_name] = dict(fields, name=pending_name)
                self.pending = None
            else:
                self.lands_after -= 1
        return super().get(name)


def fake_time(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_engine.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(_engine.time, "sleep", clock.sleep)
    return clock


def test_a_create_that_timed_out_and_lands_late_is_found_within_the_budget(monkeypatch):
    clock = fake_time(monkeypatch)
    store = LateStore(lands_after=3, budget=6.0)
    store.faults["add"] = "time_out"
    outcome = run(store, colour="red")
    assert isinstance(outcome, Exited) and outcome.result["created"] is True
    assert outcome.result["thing"] == {"name": "t1", "colour": "red"}
    assert [call[0] for call in store.calls] == ["get", "add", "get", "get", "get", "get"]
    assert clock.sleeps == [_engine.LOST_CREATE_POLL_SECONDS] * 3


def test_a_create_that_timed_out_and_never_lands_fails_once_the_budget_is_spent(monkeypatch):
    clock = fake_time(monkeypatch)
    store = LateStore(lands_after=None, budget=6.0)
    store.faults["add"] = "time_out"
    outcome = run(store, colour="red")
    assert isinstance(outcome, Failed) and "does not find thing t1" in outcome.result["msg"]
    assert clock.now - 1000.0 <= 6.0 and sum(clock.sleeps) > 5.0  # looked for as long as the budget allows
    assert [call for call in store.calls if call[0] == "add"] == [("add", "t1")]


def test_a_dropped_create_is_read_once_and_a_unique_one_sent_again_at_once(monkeypatch):
    clock = fake_time(monkeypatch)
    store = LateStore(lands_after=None)
    store.faults["add"] = "drop"  # a closed connection: over, nothing to wait for
    assert isinstance(run(store, colour="red"), Failed)
    assert clock.sleeps == []

    class Unique(Thing):
        create_is_unique = True

    store = LateStore(lands_after=None)
    store.faults["add"] = "time_out"
    outcome = run(store, kind=Unique, colour="red")
    assert isinstance(outcome, Exited) and store.objects["t1"]["colour"] == "red"
    assert clock.sleeps == [] and [call[0] for call in store.calls] == ["get", "add", "get", "add"]


class Key(Thing):
    """An object whose value only the create's answer shows (an API key)."""

    secret_shown_once = True

    def create(self, changes):
        created = super().create(changes)
        self.result["token"] = "token-%d" % len([call for call in self.client.calls if call[0] == "add"])
        return created

    def on_lost_create(self, found, changes):
        self.module.fail_json(msg="key %s was created but its token was lost" % found["name"])


def test_a_key_whose_create_answer_was_lost_is_replaced_in_the_run():
    store = Store()
    store.faults["add"] = "lose_answer"
    module = FakeModule({"name": "t1", "state": "present", "colour": "red", "secret": None,
                         "update_password": "on_create"})
    with pytest.raises(Exited) as exited:
        Key(module, store).run()
    assert exited.value.result["changed"] is True
    # The first key's token went with the answer: that key was deleted; the second's token is returned.
    assert exited.value.result["token"] == "token-2"
    assert store.calls == [("get", "t1"), ("add", "t1"), ("get", "t1"), ("remove", "t1"), ("add", "t1")]
    assert list(store.objects) == ["t1"]
    assert any("was lost" in warning and "created again" in warning for warning in module.warnings)


def test_a_key_whose_replacement_cannot_be_made_fails_through_the_modules_words():
    store = Store()
    store.faults["add"] = "lose_answer"
    store.faults["remove"] = "refuse"
    outcome = run(store, kind=Key, colour="red")
    assert isinstance(outcome, Failed) and outcome.result["msg"] == "key t1 was created but its token was lost"

    class LosesTwice(Store):
        def add(self, name, fields):
            self.faults["add"] = "lose_answer"
            return super().add(name, fields)

    store = LosesTwice()
    outcome = run(store, kind=Key, colour="red")
    assert isinstance(outcome, Failed) and "token was lost" in outcome.result["msg"]
    assert len([call for call in store.calls if call[0] == "add"]) == 2  # never a third


@pytest.mark.parametrize("text, expected", [("No answer", "No answer."), ("Done.", "Done."), ("Why? ", "Why?")])
def test_sentence_ends_a_message_so_another_can_follow(text, expected):
    assert _engine.sentence(text) == expected
