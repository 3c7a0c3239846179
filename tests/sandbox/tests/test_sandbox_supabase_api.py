"""The sandbox's Supabase Management API emulator, its journal and its fault injection, exercised
with plain HTTP the way the collection's client will use them."""

import hashlib
import hmac
import json
import threading
import time
from http import HTTPStatus
from pathlib import Path

import pytest
import requests

from tests.sandbox.core import run_services
from tests.sandbox.fixture import REPO_ROOT, SandboxControlError, running_sandbox
from tests.sandbox.seed import DEMO_ACCESS_TOKEN, DEMO_PROJECT_REF
from tests.sandbox.supabase_api import (AUTH_CONFIG_FIELDS, NEVER_NULL, RESPONSE_ONLY, UPDATE_CONSTRAINTS,
                                        UPDATE_NEVER_NULL, SupabaseManagementApi)

SPEC_PATH = REPO_ROOT.parent / "shared" / "specs" / "supabase-management-api.json"
TIMEOUT = 10

SMTP_SETTINGS = {
    "smtp_admin_email": "karto.help@rambler.ru",
    "smtp_sender_name": "Karto",
    "smtp_host": "mail.smtp2go.com",
    "smtp_port": "465",
    "smtp_user": "karto-relay",
    "smtp_pass": "correct horse battery staple",
    "smtp_max_frequency": 30,
    "rate_limit_email_sent": 30,
}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class Project:
    """One emulated Supabase project and the token that may use it."""

    def __init__(self, sandbox, ref, token):
        self.sandbox, self.ref, self.token = sandbox, ref, token
        self.url = f"{sandbox.url('supabase_api')}/v1/projects/{ref}/config/auth"

    def get(self, token=None, timeout=TIMEOUT, **kwargs):
        return requests.get(self.url, headers=_bearer(token or self.token), timeout=timeout, **kwargs)

    def patch(self, body, token=None, timeout=TIMEOUT, **kwargs):
        return requests.patch(self.url, json=body, headers=_bearer(token or self.token), timeout=timeout,
                              **kwargs)

    def stored(self):
        return self.sandbox.supabase_auth_config(self.ref)


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def project(sandbox):
    return Project(sandbox, *sandbox.add_supabase_project())


# Auth config: GET


def test_get_returns_every_auth_config_key_with_fresh_project_values(project):
    response = project.get()

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    config = response.json()
    assert list(config) == list(AUTH_CONFIG_FIELDS)
    assert len(config) == 237
    assert {key: value for key, value in config.items() if key.startswith("smtp_")} == {
        "smtp_admin_email": None, "smtp_host": None, "smtp_max_frequency": 60, "smtp_pass": None,
        "smtp_port": None, "smtp_sender_name": None, "smtp_user": None,
    }
    assert config["rate_limit_email_sent"] == 2
    assert config["external_email_enabled"] is True
    assert config["mailer_otp_exp"] == 3600


@pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"OpenAPI spec not present at {SPEC_PATH}")
def test_auth_config_fields_follow_the_openapi_spec():
    schemas = json.loads(SPEC_PATH.read_text())["components"]["schemas"]
    response_schema = schemas["AuthConfigResponse"]["properties"]
    update_schema = schemas["UpdateAuthConfigBody"]["properties"]

    assert list(AUTH_CONFIG_FIELDS) == list(response_schema)
    for name, (json_type, default) in AUTH_CONFIG_FIELDS.items():
        assert json_type == response_schema[name]["type"], name
        assert (name not in NEVER_NULL) == bool(response_schema[name].get("nullable")), name
        assert default is not None or name not in NEVER_NULL, name
    assert RESPONSE_ONLY == set(response_schema) - set(update_schema)
    assert UPDATE_NEVER_NULL == {name for name, schema in update_schema.items() if not schema.get("nullable")}
    constraints = {
        name: {key: value for key, value in schema.items() if key not in ("type", "nullable")}
        for name, schema in update_schema.items()
    }
    assert UPDATE_CONSTRAINTS == {name: rules for name, rules in constraints.items() if rules}


def test_seeded_demo_project_answers_to_the_demo_token(sandbox):
    url = f"{sandbox.url('supabase_api')}/v1/projects/{DEMO_PROJECT_REF}/config/auth"

    response = requests.get(url, headers=_bearer(DEMO_ACCESS_TOKEN), timeout=TIMEOUT)

    assert response.status_code == 200
    assert list(response.json()) == list(AUTH_CONFIG_FIELDS)


# Auth config: PATCH


def test_patch_returns_the_full_config_with_the_password_as_hmac(project):
    response = project.patch(SMTP_SETTINGS)

    assert response.status_code == 200
    config = response.json()
    assert list(config) == list(AUTH_CONFIG_FIELDS)
    expected_digest = hmac.new(project.ref.encode(), SMTP_SETTINGS["smtp_pass"].encode(),
                               hashlib.sha256).hexdigest()
    assert config["smtp_pass"] == expected_digest
    assert project.get().json()["smtp_pass"] == expected_digest
    assert {key: config[key] for key in SMTP_SETTINGS if key != "smtp_pass"} == {
        key: value for key, value in SMTP_SETTINGS.items() if key != "smtp_pass"}
    assert project.stored()["smtp_pass"] == SMTP_SETTINGS["smtp_pass"]


def test_patch_is_partial_and_null_resets_a_key(project):
    project.patch(SMTP_SETTINGS)

    response = project.patch({"smtp_sender_name": "Karto Support", "smtp_user": None})

    assert response.status_code == 200
    config = project.stored()
    assert config["smtp_sender_name"] == "Karto Support"
    assert config["smtp_user"] is None
    assert config["smtp_pass"] == SMTP_SETTINGS["smtp_pass"]
    assert config["smtp_host"] == SMTP_SETTINGS["smtp_host"]


def test_null_on_a_never_null_key_restores_its_fresh_value(project):
    project.patch({"mfa_phone_otp_length": 8})

    assert project.patch({"mfa_phone_otp_length": None}).json()["mfa_phone_otp_length"] == 6


def test_smtp_port_as_a_number_is_rejected_and_changes_nothing(project, sandbox):
    response = project.patch({**SMTP_SETTINGS, "smtp_port": 465})

    assert response.status_code == 400
    assert response.json() == {"message": "smtp_port: Expected string, received number"}
    assert project.stored()["smtp_host"] is None
    [entry] = sandbox.journal(path_contains=project.ref, method="PATCH")
    assert entry["status"] == 400


@pytest.mark.parametrize("body, message", [
    ({"smtp_max_frequency": 32768}, "smtp_max_frequency: Number must be less than or equal to 32767"),
    ({"smtp_max_frequency": -1}, "smtp_max_frequency: Number must be greater than or equal to 0"),
    ({"rate_limit_email_sent": 0}, "rate_limit_email_sent: Number must be greater than or equal to 1"),
    ({"rate_limit_email_sent": 1.5}, "rate_limit_email_sent: Expected integer, received float"),
    ({"rate_limit_email_sent": "30"}, "rate_limit_email_sent: Expected number, received string"),
    ({"smtp_port": True}, "smtp_port: Expected string, received boolean"),
    ({"smtp_admin_email": "karto.help"}, "smtp_admin_email: Invalid email"),
    ({"mailer_otp_length": 11}, "mailer_otp_length: Number must be less than or equal to 10"),
    ({"mailer_otp_exp": None}, "mailer_otp_exp: Expected number, received null"),
    ({"db_max_pool_size_unit": ""},
     "db_max_pool_size_unit: Invalid enum value. Expected 'connections' | 'percent', received ''"),
    # keys are reported in spec order, not body order
    ({"smtp_port": 465, "jwt_exp": -1}, "jwt_exp: Number must be greater than or equal to 0"),
])
def test_invalid_values_are_400_with_a_zod_style_message(project, body, message):
    response = project.patch(body)

    assert response.status_code == 400
    assert response.json() == {"message": message}


def test_boundary_values_are_accepted(project):
    for body in ({"smtp_max_frequency": 0}, {"smtp_max_frequency": 32767}, {"rate_limit_email_sent": 1}):
        assert project.patch(body).status_code == 200, body


def test_unknown_and_response_only_keys_are_ignored(project):
    response = project.patch({"smtp_hostname": "typo.example", "custom_oauth_max_providers": 99})

    assert response.status_code == 200
    assert "smtp_hostname" not in response.json()
    assert response.json()["custom_oauth_max_providers"] == 3


def test_a_body_that_is_not_a_json_object_is_400(project):
    not_json = requests.patch(project.url, data="{smtp_host", headers=_bearer(project.token), timeout=TIMEOUT)
    a_list = project.patch(["smtp_host"])

    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("Invalid JSON body")
    assert a_list.status_code == 400


def test_empty_smtp_host_disables_custom_smtp_and_resets_the_smtp_settings(project):
    project.patch({**SMTP_SETTINGS, "site_url": "https://karto.example"})

    response = project.patch({"smtp_host": ""})

    assert response.status_code == 200
    config = response.json()
    assert {key: value for key, value in config.items() if key.startswith("smtp_") and value is not None} == {}
    # "disabling brings it back to 2" (supabase/supabase PR 40638): the fresh project's email rate limit.
    assert config["rate_limit_email_sent"] == 2
    assert config["site_url"] == "https://karto.example"  # nothing else changes
    assert project.stored()["smtp_pass"] is None
    assert project.get().json() == config


# Authentication and authorization


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer sbp_" + "0" * 40},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer "},
])
def test_missing_or_unknown_token_is_401(project, headers):
    response = requests.get(project.url, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_token_of_another_project_or_unknown_ref_is_404(sandbox, project):
    other_ref, other_token = sandbox.add_supabase_project()

    wrong_project = project.get(token=other_token)
    unknown_ref = requests.get(project.url.replace(project.ref, "nosuchprojectrefxxxx"),
                               headers=_bearer(project.token), timeout=TIMEOUT)

    assert wrong_project.status_code == 404
    assert set(wrong_project.json()) == {"message"}
    assert unknown_ref.status_code == 404
    assert sandbox.supabase_auth_config(other_ref)["smtp_host"] is None


def test_one_token_can_be_granted_several_projects(sandbox, project):
    second_ref = sandbox.add_supabase_project(token=project.token)[0]

    assert Project(sandbox, second_ref, project.token).get().status_code == 200
    assert project.get().status_code == 200


def test_adding_a_project_again_keeps_its_config(sandbox, project):
    project.patch(SMTP_SETTINGS)

    sandbox.add_supabase_project(ref=project.ref, token=project.token)

    assert project.stored()["smtp_host"] == SMTP_SETTINGS["smtp_host"]


def test_control_api_rejects_malformed_projects(sandbox):
    with pytest.raises(SandboxControlError, match="20 lowercase letters"):
        sandbox.add_supabase_project(ref="Short")
    with pytest.raises(SandboxControlError, match="sbp_"):
        sandbox.add_supabase_project(token="not-a-token")
    with pytest.raises(SandboxControlError, match="404"):
        sandbox.supabase_auth_config("nosuchprojectrefxxxx")


# Rate limits


def test_every_answer_carries_rate_limit_headers(project):
    answers = [project.get(), project.get(), project.patch({"smtp_port": 1}), project.get(token="sbp_" + "1" * 40)]

    for answer in answers:
        assert all(header in answer.headers for header in RATE_LIMIT_HEADERS), answer.status_code
    first, second, patch = answers[:3]
    assert first.headers["X-RateLimit-Limit"] == "120"
    assert int(first.headers["X-RateLimit-Remaining"]) == 119
    assert int(second.headers["X-RateLimit-Remaining"]) == 118
    assert int(patch.headers["X-RateLimit-Remaining"]) == 119  # its own endpoint, its own count
    assert 0 < int(first.headers["X-RateLimit-Reset"]) <= 60


def test_over_the_limit_is_429_until_the_window_ends(sandbox, project):
    sandbox.set_supabase_rate_limit(project.ref, 3)

    answers = [project.get() for _attempt in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[3].json() == {"message": "Too many requests"}
    assert answers[3].headers["X-RateLimit-Limit"] == "3"
    assert answers[3].headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(answers[3].headers["X-RateLimit-Reset"]) <= 60
    assert project.patch({"smtp_sender_name": "x"}).status_code == 200  # other endpoint
    other_ref, other_token = sandbox.add_supabase_project()
    assert Project(sandbox, other_ref, other_token).get().status_code == 200  # other project


def test_the_rate_limit_window_reopens(sandbox, project):
    sandbox.set_supabase_rate_limit(project.ref, 1, window_seconds=1)
    assert project.get().status_code == 200
    assert project.get().status_code == 429

    deadline = time.monotonic() + 5
    while (answer := project.get()).status_code == 429:
        assert time.monotonic() < deadline, "rate-limit window never reopened"
        time.sleep(0.05)

    assert answer.status_code == 200


def test_a_null_limit_restores_the_real_one(sandbox, project):
    sandbox.set_supabase_rate_limit(project.ref, 1)
    project.get()

    assert sandbox.set_supabase_rate_limit(project.ref, None) == {"limit": 120, "window_seconds": 60}
    assert project.get().headers["X-RateLimit-Remaining"] == "119"


# Faults


def test_status_fault_answers_instead_of_the_emulator_for_its_times(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="status", status=429,
                         headers={"X-RateLimit-Reset": "1"}, body={"message": "Too many requests"}, times=2)

    answers = [project.patch({"smtp_sender_name": f"try {n}"}) for n in range(3)]

    assert [answer.status_code for answer in answers] == [429, 429, 200]
    assert answers[0].json() == {"message": "Too many requests"}
    assert answers[0].headers["X-RateLimit-Reset"] == "1"
    assert project.stored()["smtp_sender_name"] == "try 2"
    entries = sandbox.journal(path_contains=project.ref)
    assert [(entry["status"], entry["fault"], entry["fault_action"]) for entry in entries] == [
        (429, True, "status"), (429, True, "status"), (200, False, None)]
    assert sandbox.faults() == []


def test_status_fault_without_body_uses_the_provider_error_shape(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="status", status=503)

    response = project.get()

    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_faulted_5xx_carries_the_rate_limit_headers_of_a_real_answer(sandbox, project, status):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="status", status=status)

    faulted = project.get()
    real = project.get()

    assert faulted.status_code == status
    assert faulted.json() == {"message": HTTPStatus(status).phrase}
    for name in RATE_LIMIT_HEADERS:
        assert name in faulted.headers, name
    assert faulted.headers["X-RateLimit-Limit"] == "120"
    assert faulted.headers["X-RateLimit-Remaining"] == "119"
    assert faulted.headers["X-RateLimit-Reset"] == "60"  # a window opened by this request
    # It counted, as a request that reached the API does: the next real answer has one less left.
    assert real.headers["X-RateLimit-Remaining"] == "118"
    assert {name.lower() for name in faulted.headers} - {"date"} == {name.lower() for name in real.headers} - {"date"}


def test_a_faulted_answer_keeps_headers_the_fault_names_and_a_429_has_none_left(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="status", status=503,
                         headers={"X-RateLimit-Reset": "7", "Retry-After": "7"})
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="status", status=429)

    named, limited = project.get(), project.get()

    assert (named.headers["X-RateLimit-Reset"], named.headers["Retry-After"]) == ("7", "7")
    assert named.headers["X-RateLimit-Limit"] == "120"
    assert (limited.status_code, limited.headers["X-RateLimit-Remaining"]) == (429, "0")


def test_logs_all_faults_carry_its_own_limit(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains="logs.all", action="status", status=502)
    url = f"{sandbox.url('supabase_api')}/v1/projects/{project.ref}/analytics/endpoints/logs.all"

    response = requests.get(url, headers=_bearer(project.token), timeout=TIMEOUT)

    assert response.status_code == 502 and response.headers["X-RateLimit-Limit"] == "30"


def test_unknown_paths_carry_the_rate_limit_headers_too(sandbox, project):
    response = requests.get(f"{sandbox.url('supabase_api')}/v1/projects/{project.ref}/nothing-here",
                            headers=_bearer(project.token), timeout=TIMEOUT)

    assert response.status_code == 404 and response.headers["X-RateLimit-Limit"] == "120"


def test_drop_fault_closes_the_connection_and_never_reaches_the_state(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, method="PATCH", action="drop")

    with pytest.raises(requests.ConnectionError):
        project.patch(SMTP_SETTINGS)

    assert project.stored()["smtp_host"] is None
    [entry] = sandbox.journal(path_contains=project.ref)
    assert (entry["status"], entry["fault"], entry["fault_action"]) == (None, True, "drop")
    assert entry["json"] == SMTP_SETTINGS
    assert project.patch(SMTP_SETTINGS).status_code == 200


def test_delay_fault_answers_normally_after_the_delay(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="delay", seconds=0.4)

    started = time.monotonic()
    response = project.get()
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.4
    [entry] = sandbox.journal(path_contains=project.ref)
    assert (entry["status"], entry["fault"], entry["fault_action"]) == (200, False, "delay")


def test_delay_fault_makes_a_client_time_out(sandbox, project):
    sandbox.inject_fault(service="supabase_api", path_contains=project.ref, action="delay", seconds=1)

    with pytest.raises(requests.Timeout):
        project.get(timeout=0.2)


def test_forever_fault_matches_method_and_path_until_cleared(sandbox, project):
    other = Project(sandbox, *sandbox.add_supabase_project())
    sandbox.inject_fault(service="supabase_api", method="GET", path_contains=project.ref, action="status",
                         status=500, times=-1)

    assert [project.get().status_code for _attempt in range(3)] == [500, 500, 500]
    assert project.patch({"smtp_sender_name": "x"}).status_code == 200  # method does not match
    assert other.get().status_code == 200  # path does not match
    [fault] = sandbox.faults()
    assert fault["times"] == -1

    sandbox.clear_faults()

    assert project.get().status_code == 200


@pytest.mark.parametrize("spec, message", [
    ({"service": "nosuch", "action": "drop"}, "unknown service"),
    ({"service": "control", "action": "drop"}, "unknown service"),
    ({"service": "supabase_api", "action": "explode"}, "action must be"),
    ({"service": "supabase_api", "action": "status"}, "status must be"),
    ({"service": "supabase_api", "action": "delay", "seconds": -1}, "seconds must be"),
    ({"service": "supabase_api", "action": "drop", "times": 0}, "times must be"),
    ({"service": "supabase_api", "action": "drop", "path": "/v1"}, "unknown fault keys: path"),
])
def test_malformed_fault_specs_are_refused(sandbox, spec, message):
    with pytest.raises(SandboxControlError, match=message):
        sandbox.inject_fault(**spec)


# Journal


def test_journal_filters_and_keeps_credentials_out(sandbox, project):
    other = Project(sandbox, *sandbox.add_supabase_project())
    project.get()
    project.patch({"smtp_sender_name": "Karto"})
    other.get()

    mine = sandbox.journal(service="supabase_api", path_contains=project.ref)
    patches = sandbox.journal(path_contains=project.ref, method="patch")

    assert [entry["method"] for entry in mine] == ["GET", "PATCH"]
    assert mine[0]["seq"] < mine[1]["seq"]
    assert mine[1]["json"] == {"smtp_sender_name": "Karto"}
    assert mine[0]["json"] is None
    assert mine[0]["path"] == f"/v1/projects/{project.ref}/config/auth"
    assert [entry["seq"] for entry in patches] == [mine[1]["seq"]]
    assert sandbox.journal(service="nosuch") == []
    assert project.token not in json.dumps(sandbox.journal())
    assert "Authorization" not in mine[0]["headers"]


def test_journal_records_the_query_and_clears(sandbox, project):
    project.get(params={"reveal": "true"})
    assert sandbox.journal(path_contains=project.ref)[0]["query"] == {"reveal": "true"}

    sandbox.clear_journal()

    assert sandbox.journal() == []


def test_concurrent_requests_are_all_answered_and_journaled(sandbox, project):
    names = [f"sender {n}" for n in range(16)]
    answers = []

    def patch(name):
        answers.append(project.patch({"smtp_sender_name": name}).status_code)

    threads = [threading.Thread(target=patch, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)

    assert answers == [200] * 16
    assert project.stored()["smtp_sender_name"] in names
    assert len(sandbox.journal(path_contains=project.ref, method="PATCH")) == 16


# The process


def test_unseeded_sandbox_starts_and_stops_cleanly(tmp_path):
    with running_sandbox(tmp_path, seed="none") as unseeded:
        endpoints_file = Path(tmp_path / "endpoints.json")
        assert {"pid", "control", "supabase_api", "ca_cert", "state_dir"} <= set(unseeded.endpoints)
        assert Path(unseeded.ca_cert).read_text().startswith("-----BEGIN CERTIFICATE-----")
        url = f"{unseeded.url('supabase_api')}/v1/projects/{DEMO_PROJECT_REF}/config/auth"
        assert requests.get(url, headers=_bearer(DEMO_ACCESS_TOKEN), timeout=TIMEOUT).status_code == 401

    assert not endpoints_file.exists()  # removed by the SIGTERM handler's clean shutdown
    assert "Traceback" not in (tmp_path / "sandbox.log").read_text()


def test_an_emulator_error_s_500_carries_the_rate_limit_headers_too(tmp_path, capsys):
    # In-process, with a handler that breaks after the request was admitted (counted once).
    with run_services(tmp_path, [SupabaseManagementApi]) as (context, endpoints):
        api = context.service("supabase_api")
        ref, token = "abcdefghijklmnopqrst", "sbp_" + "1" * 40
        api.add_project(ref, token)

        def broken(_ref):
            raise RuntimeError("emulator bug")

        api._as_returned = broken  # pylint: disable=protected-access
        response = requests.get(f"{endpoints['supabase_api']}/v1/projects/{ref}/config/auth",
                                headers=_bearer(token), timeout=TIMEOUT)

    assert response.status_code == 500
    assert (response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"]) == ("120", "119")
    assert "emulator bug" in capsys.readouterr().err  # said loudly on stderr
