"""The relay contract's Python side: profile completeness and the registry found by file name."""

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay import RelayProfile, profile_problems


def example_profile(**changes):
    fields = dict(
        name="example", title="Example Relay", smtp_host="smtp.relay.example",
        smtp_ports={465: "implicit", 587: "starttls"}, default_port=465,
        username_rule="per_project", password_source="generated",
        dns={"spf_includes": ("spf.relay.example",), "dkim_cname_suffixes": ("relay.example",),
             "dkim_txt_selectors": (), "default_selectors": (), "signs_as_sender": False},
        own_domain_steps="verify the domain with Example Relay",
        advice={"sender-unverified": "verify {sender_email}", "sender-rejected": "verify it",
                "auth-rejected": "reset the password"},
    )
    fields.update(changes)
    return RelayProfile(**fields)


def test_a_complete_profile_has_no_problems():
    assert profile_problems(example_profile(), "_provider_example") == []


@pytest.mark.parametrize("changes, problem", [
    ({"name": "Bad Name"}, "name must be"),
    ({"title": ""}, "title must be a non-empty string"),
    ({"smtp_ports": {465: "ssl"}}, "smtp_ports must map ports"),
    ({"default_port": 2525}, "default_port must be one of smtp_ports"),
    ({"smtp_ports": {465: "starttls", 587: "starttls"}}, "Supabase Auth speaks implicit TLS exactly on 465"),
    ({"smtp_ports": {465: "implicit", 587: "implicit"}}, "Supabase Auth speaks implicit TLS exactly on 465"),
    ({"username_rule": "anything"}, "username_rule must be one of"),
    ({"username_rule": "fixed"}, "fixed_username is needed exactly when"),
    ({"fixed_username": "apikey"}, "fixed_username is needed exactly when"),
    ({"password_source": "typed"}, "password_source must be one of"),
    ({"dns": {"spf_includes": ()}}, "dns lacks"),
    ({"advice": {"sender-rejected": "x", "auth-rejected": "y"}}, "advice for sender-unverified is missing"),
    ({"advice": {"sender-unverified": "a", "sender-rejected": "b", "auth-rejected": "c", "typo-class": "d"}},
     "advice for unknown failure classes typo-class"),
])
def test_an_incomplete_profile_is_named_with_what_it_lacks(changes, problem):
    problems = profile_problems(example_profile(**changes), None)
    assert any(problem in text for text in problems), problems


def test_the_file_name_must_match_the_profile_name():
    assert profile_problems(example_profile(), "_provider_other") == [
        "example: the file must be named _provider_example.py"]


def test_as_dict_is_plain_data_with_the_sender_filled_in():
    data = example_profile().as_dict(sender_email="karto.help@ro.ru")
    assert data["advice"]["sender-unverified"] == "verify karto.help@ro.ru"
    assert data["smtp_ports"] == [{"port": 465, "tls": "implicit"}, {"port": 587, "tls": "starttls"}]
    assert data["dns"]["spf_includes"] == ["spf.relay.example"]
    assert data["is_default"] is False


def test_the_registry_finds_providers_by_file_name_alone(tmp_path):
    for name in ("_provider_b.py", "_provider_a.py", "_http.py", "_provider_c.txt", "__init__.py"):
        (tmp_path / name).write_text("")
    assert _relay.provider_module_names(str(tmp_path)) == ["_provider_a", "_provider_b"]


def test_every_registered_profile_is_complete_and_exactly_one_is_the_default():
    profiles = _relay.registered_profiles()
    assert profiles, "no provider is registered"
    for module_name in _relay.provider_module_names():
        name = module_name[len(_relay.PROVIDER_MODULE_PREFIX):]
        assert name in profiles
        assert profile_problems(profiles[name], module_name) == []
    assert len([p for p in profiles.values() if p.is_default]) == 1


def test_a_broken_provider_file_fails_the_registry_loudly(monkeypatch):
    real = _relay.importlib.import_module

    class Broken:
        PROFILE = example_profile(title="")

    def fake_import(name):
        return Broken if name.endswith("_provider_broken") else real(name)

    monkeypatch.setattr(_relay, "provider_module_names", lambda directory=None: ["_provider_broken"])
    monkeypatch.setattr(_relay.importlib, "import_module", fake_import)
    with pytest.raises(ValueError, match="the file must be named _provider_example.py"):
        _relay.registered_profiles()
