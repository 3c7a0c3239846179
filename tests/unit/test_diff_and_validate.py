"""The shared change/diff engine, input checks, and the Supabase password HMAC."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _diff, _validate
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import (
    PROJECT_REF_PATTERN,
    is_password_hmac,
    smtp_pass_hmac,
)


def test_hmac_matches_the_supabase_cli_test_vector():
    # supabase/cli apps/cli-go/pkg/config/auth_test.go: key "" and password "test-key".
    assert smtp_pass_hmac("", "test-key") == "ed64b7695a606bc6ab4fcb41fe815b5ddf1063ccbc87afe1fa89756635db520e"


def test_hmac_is_keyed_by_project_ref():
    assert smtp_pass_hmac("aaaaaaaaaaaaaaaaaaaa", "pw") != smtp_pass_hmac("bbbbbbbbbbbbbbbbbbbb", "pw")
    assert is_password_hmac(smtp_pass_hmac("aaaaaaaaaaaaaaaaaaaa", "pw"))
    assert not is_password_hmac("****")
    assert not is_password_hmac(None)


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


@pytest.mark.parametrize("host, ok", [
    ("mail.smtp2go.com", True), ("127.0.0.1", True), ("::1", True), ("localhost", True),
    ("http://smtp.gmail.com", False), ("smtp.gmail.com:587", False), (" smtp.x.com", False),
    ("smtp x.com", False), ("bad_host-.com", False), ("", False),
])
def test_check_smtp_host(host, ok):
    problem = _validate.check_smtp_host("host", host)
    assert (problem is None) is ok
    if problem:
        assert problem.startswith("host ")


def test_whitespace_in_a_secret_is_named_but_not_quoted():
    problem = _validate.check_no_surrounding_whitespace("password", "hunter2 \n", secret=True)
    assert "password" in problem and "trailing" in problem and "hunter2" not in problem
    problem = _validate.check_no_surrounding_whitespace("username", " bob")
    assert "leading" in problem and "' bob'" in problem
    assert _validate.check_no_surrounding_whitespace("password", "fine", secret=True) is None


@pytest.mark.parametrize("address, ok", [
    ("karto.help@ro.ru", True), ("a+b@mail.example.org", True),
    ("karto.help", False), ("a@b", False), ("KARTO <karto.help@ro.ru>", False), ("a b@ro.ru", False),
])
def test_check_email(address, ok):
    assert (_validate.check_email("sender_email", address) is None) is ok


def test_ranges_and_patterns_name_the_parameter():
    assert "port must be between 1 and 65535" in _validate.check_range("port", 70000, 1, 65535)
    assert _validate.check_range("port", 465, 1, 65535) is None
    assert _validate.check_pattern("project_ref", "abc", PROJECT_REF_PATTERN, "20 letters").startswith("project_ref")
    assert _validate.check_single_line("sender_name", "KARTO\r\nBcc: x") is not None
    assert _validate.first_problem(None, "b", "c") == "b"
