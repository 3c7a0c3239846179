"""The stored_secret lookup: a missing file is an answer, an unreadable one an error that names the
path and never the content (the role would otherwise generate a secret over one the relay holds)."""

import pytest
from ansible.errors import AnsibleLookupError

from tests.collection_path import make_importable

make_importable()
from ansible_collections.karto.supabase_mail.plugins.lookup.stored_secret import LookupModule  # noqa: E402 pylint: disable=wrong-import-position


def read(path):
    return LookupModule().run([str(path)], variables={})


def test_a_missing_file_is_reported_as_missing(tmp_path):
    assert read(tmp_path / "smtp2go-x.password") == [{"exists": False, "text": ""}]


def test_the_text_comes_back_as_stored_without_surrounding_whitespace(tmp_path):
    path = tmp_path / "smtp2go-x.password"
    path.write_text("$ANSIBLE_VAULT;1.2;AES256;karto\n6162\n")
    assert read(path) == [{"exists": True, "text": "$ANSIBLE_VAULT;1.2;AES256;karto\n6162"}]


def test_a_tilde_is_the_controller_users_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "secret").write_text("s3cret\n")
    assert read("~/secret") == [{"exists": True, "text": "s3cret"}]


def test_a_path_that_cannot_be_read_fails_naming_it(tmp_path):
    with pytest.raises(AnsibleLookupError, match="cannot read the stored secret %s" % tmp_path):
        read(tmp_path)  # a folder


def test_a_file_that_is_not_text_fails_without_showing_it(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"\xff\xfesecret-bytes")
    with pytest.raises(AnsibleLookupError) as raised:
        read(path)
    assert "not UTF-8 text" in str(raised.value) and "secret-bytes" not in str(raised.value)


def test_one_path_only(tmp_path):
    with pytest.raises(AnsibleLookupError, match="one path; got 2"):
        LookupModule().run([str(tmp_path / "a"), str(tmp_path / "b")], variables={})
