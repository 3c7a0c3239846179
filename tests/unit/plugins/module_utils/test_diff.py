"""_diff: the changed-field decision, the write-only secret policy and the masked diff."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _diff


def test_changed_fields_skips_unmanaged_and_equal_values():
    current = {"smtp_host": "a", "smtp_port": "465", "smtp_user": "u"}
    wanted = {"smtp_host": "a", "smtp_port": "587", "smtp_user": None, "smtp_sender_name": "K"}
    assert _diff.changed_fields(current, wanted) == {"smtp_port": "587", "smtp_sender_name": "K"}


@pytest.mark.parametrize("verdict, policy, expected", [
    (_diff.SECRET_UNMANAGED, "always", False),
    (_diff.SECRET_UNCHANGED, "always", False),
    (_diff.SECRET_UNCHANGED, "on_change", False),
    (_diff.SECRET_DIFFERENT, "on_change", True),
    (_diff.SECRET_UNKNOWN, "on_change", False),
    (_diff.SECRET_UNKNOWN, "always", True),
])
def test_should_write_secret(verdict, policy, expected):
    assert _diff.should_write_secret(verdict, policy) is expected


def test_diff_never_holds_the_secret_and_shows_change_only():
    diff = _diff.build_diff({"host": "a"}, {"host": "b"}, secret=("password", True, True, True))
    assert diff == {"before": {"host": "a", "password": "<hidden>"},
                    "after": {"host": "b", "password": "<hidden, changed>"}}
    same = _diff.build_diff({}, {}, secret=("password", True, True, False))
    assert same["before"] == same["after"]
    removed = _diff.build_diff({}, {}, secret=("password", True, False, False))
    assert removed == {"before": {"password": "<hidden>"}, "after": {"password": None}}
