"""_validate: input checks that name the parameter and never quote a secret."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _validate
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import PROJECT_REF_PATTERN


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
