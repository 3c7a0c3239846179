#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: supabase_email_test
short_description: Prove Supabase Auth can send its mail by having it send one
version_added: 0.1.0
description:
  - Asks a project's Supabase Auth to send one real mail (a magic link by default) to a test
    address, the way a user's sign-in would, and reports whether Auth sent it.
  - Supabase Auth sends synchronously and answers HTTP 500 when the SMTP server refuses; the
    module then reads the project's Auth logs through the Management API
    (C(/v1/projects/{ref}/analytics/endpoints/logs.all)) for the SMTP error text, and classifies
    it (credentials, sender not verified, TLS or port mismatch, ...) with a fix.
  - It changes no setting, so it reports C(changed=false); it does send a mail on every run.
author:
  - karto maintainers (@karto)
extends_documentation_fragment:
  - karto.supabase_mail.supabase
  - karto.supabase_mail.http
attributes:
  check_mode:
    description: Sends nothing in check mode; RV(delivery.status) is V(skipped).
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
options:
  project_ref:
    description:
      - The project's reference ID, the 20 lowercase letters in C(https://<ref>.supabase.co).
    type: str
    required: true
  auth_url:
    description:
      - Base URL of the project's Auth API, without C(/auth/v1).
      - If not set, the environment variable E(SUPABASE_AUTH_URL) is used, else C(https://<project_ref>.supabase.co).
    type: str
  anon_key:
    description:
      - The project's public (anon or publishable) API key, sent as C(apikey).
      - When omitted it is read with the Management API (the access token needs C(secrets:read)).
    type: str
  service_role_key:
    description:
      - The project's secret (service_role or secret) key; needed only for O(action=invite).
      - When omitted it is read with the Management API.
    type: str
  email:
    description:
      - The address the test mail goes to. Use a mailbox you can read.
    type: str
    required: true
  action:
    description:
      - Which Auth mail to trigger.
      - V(otp) sends a magic link (C(POST /auth/v1/otp)); with O(create_user=true) it creates the
        user when missing.
      - V(signup) creates an unconfirmed user and sends the confirmation mail.
      - V(invite) sends an invitation (service key needed).
      - V(recover) sends a password recovery mail; Supabase answers success even for an unknown
        address without sending anything, so use it only for an existing user.
    type: str
    choices: [otp, signup, invite, recover]
    default: otp
  create_user:
    description:
      - With O(action=otp), create the test user when it does not exist yet.
    type: bool
    default: true
  rate_limit_wait:
    description:
      - When Auth answers that the same address got a mail too recently (C(smtp_max_frequency)),
        wait up to this many seconds and try once more; otherwise report V(rate_limited).
    type: int
    default: 65
  log_timeout:
    description:
      - Seconds to wait for the failure's log line to appear in the Auth logs.
    type: int
    default: 60
  fail_on_error:
    description:
      - Fail the task when the mail was not sent. With V(false) the result still says why.
    type: bool
    default: true
notes:
  - The logs endpoint allows 30 requests a minute; the module polls it at most every 3 seconds and
    only after a failure.
seealso:
  - module: karto.supabase_mail.supabase_smtp
"""

EXAMPLES = r"""
- name: Send a magic link to the team mailbox and fail with the cause if Auth cannot
  karto.supabase_mail.supabase_email_test:
    project_ref: kartodemoprojectrefa
    access_token: "{{ supabase_access_token }}"
    email: karto.help@ro.ru
  register: delivery
  delegate_to: localhost

- name: Report instead of failing
  karto.supabase_mail.supabase_email_test:
    project_ref: kartodemoprojectrefa
    access_token: "{{ supabase_access_token }}"
    email: karto.help@ro.ru
    fail_on_error: false
  register: delivery
  delegate_to: localhost

- name: Say what went wrong
  ansible.builtin.debug:
    msg: "{{ delivery.delivery.error_class }}: {{ delivery.delivery.hint }}"
  when: delivery.delivery.status == 'failed'
"""

RETURN = r"""
delivery:
  description: What happened to the test mail.
  returned: always
  type: dict
  contains:
    status:
      description: V(sent) (Auth handed it to the SMTP server), V(failed), V(rate_limited) or V(skipped) (check mode).
      type: str
      sample: sent
    action:
      description: The Auth endpoint used.
      type: str
      sample: otp
    recipient:
      description: The test address.
      type: str
      sample: karto.help@ro.ru
    http_status:
      description: Auth's HTTP answer.
      type: int
      sample: 200
    request_id:
      description: Auth's request ID when it sent one.
      type: str
      sample: 5f0c5a3e-2b4e-4c1e-9a57-1d8a0a6f4c11
    error:
      description: The SMTP error text from the Auth logs (or Auth's answer when no log line came).
      type: str
      sample: "gomail: could not send email 1: 550-From header sender domain not verified (ro.ru)"
    error_class:
      description:
        - The failure class, one of auth-rejected, auth-unavailable, sender-rejected, recipient-rejected,
          tls-mismatch, tls-certificate, starttls-unavailable, dns, connection-refused, connect-timeout,
          rate-limited, relay-refused, unknown.
      type: str
      sample: sender-rejected
    hint:
      description: What to do about it.
      type: str
      sample: "The relay refuses the From address: verify it (click the link the relay mailed to it) or verify its domain, then retry."
    log_line:
      description: The Auth log line the error came from, when found.
      type: dict
"""

import datetime
import re
import secrets
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.karto.supabase_mail.plugins.module_utils._diagnose import classify_failure
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import ApiError
from ansible_collections.karto.supabase_mail.plugins.module_utils._module import ApiModule
from ansible_collections.karto.supabase_mail.plugins.module_utils._supabase import (
    PROJECT_REF_PATTERN,
    SupabaseAuthClient,
    SupabaseManagementClient,
    connection_argument_spec,
    pick_api_key,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_email,
    check_pattern,
    check_range,
    first_problem,
)

MAIL_NAMES = {"otp": "magic link", "signup": "confirmation", "invite": "invite", "recover": "recovery"}
_WAIT_SECONDS = re.compile(r"after (\d+) seconds?")
LOG_POLL_INTERVAL = 3.0


def request_body(action, email, create_user):
    if action == "otp":
        return {"email": email, "create_user": create_user}
    if action == "signup":
        # A throwaway password: the test user signs in with the mailed link, never with this.
        return {"email": email, "password": secrets.token_urlsafe(24)}
    return {"email": email}


def trigger(auth, action, body):
    """POST the Auth endpoint once; a retry could send a second mail."""
    return auth.request("POST", "/auth/v1/%s" % action, json_body=body, idempotent=False,
                        retry=False, raw=True)


def answer_text(response):
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return body.get("msg") or body.get("message") or body.get("error_description") or str(body)
    return str(body)


def find_failure_line(lines, email, action, request_id, since_us):
    """The Auth log line that explains this request's failure, or None."""
    for line in lines:
        if not isinstance(line, dict) or not line.get("error"):
            continue
        stamp = line.get("timestamp")
        if isinstance(stamp, (int, float)) and stamp < since_us:
            continue
        if request_id and line.get("request_id") == request_id:
            return line
        actor = (line.get("auth_event") or {}).get("actor_username")
        if actor == email or (not request_id and line.get("path") == "/%s" % action):
            return line
    return None


def read_failure_from_logs(module, management, email, request_id, started):
    ref = module.params["project_ref"]
    since_us = int(started.timestamp() * 1000000)
    deadline = time.monotonic() + module.params["log_timeout"]
    while True:
        now = datetime.datetime.now(datetime.timezone.utc)
        lines = management.query_auth_logs(ref, started - datetime.timedelta(minutes=1),
                                           now + datetime.timedelta(minutes=1))
        line = find_failure_line(lines, email, module.params["action"], request_id, since_us)
        if line or time.monotonic() + LOG_POLL_INTERVAL > deadline:
            return line
        time.sleep(LOG_POLL_INTERVAL)


def run_module():
    module = ApiModule(
        argument_spec=dict(
            project_ref=dict(type="str", required=True),
            auth_url=dict(type="str", fallback=(env_fallback, ["SUPABASE_AUTH_URL"])),
            anon_key=dict(type="str", no_log=True),
            service_role_key=dict(type="str", no_log=True),
            email=dict(type="str", required=True),
            action=dict(type="str", default="otp", choices=["otp", "signup", "invite", "recover"]),
            create_user=dict(type="bool", default=True),
            rate_limit_wait=dict(type="int", default=65),
            log_timeout=dict(type="int", default=60),
            fail_on_error=dict(type="bool", default=True),
        ),
        connection_spec=connection_argument_spec(),
    )
    params = module.params
    ref = params["project_ref"]
    module.fail_on_problem(first_problem(
        check_pattern("project_ref", ref, PROJECT_REF_PATTERN,
                      "the 20 lowercase letters of https://<ref>.supabase.co"),
        check_email("email", params["email"]),
        check_range("rate_limit_wait", params["rate_limit_wait"], 0, 3600),
        check_range("log_timeout", params["log_timeout"], 0, 3600),
    ))
    action = params["action"]
    delivery = {"status": "skipped", "action": action, "recipient": params["email"], "http_status": None,
                "request_id": None, "error": None, "error_class": None, "hint": None, "log_line": None}
    if module.check_mode:
        module.exit_json(changed=False, delivery=delivery)

    management = SupabaseManagementClient(
        params["api_url"], params["access_token"], project_ref=ref, timeout=params["timeout"],
        validate_certs=params["validate_certs"],
        secrets=[params["anon_key"], params["service_role_key"]])
    try:
        anon_key, service_key = params["anon_key"], params["service_role_key"]
        if not anon_key or (action == "invite" and not service_key):
            keys = management.get_api_keys(ref)
            anon_key = anon_key or pick_api_key(keys, "anon")
            service_key = service_key or pick_api_key(keys, "service_role")
            if not anon_key:
                module.fail_json(msg="project_ref=%s has no anon or publishable API key; pass anon_key." % ref)
        auth = SupabaseAuthClient(
            params["auth_url"] or "https://%s.supabase.co" % ref, anon_key,
            bearer=service_key if action == "invite" else None, timeout=params["timeout"],
            validate_certs=params["validate_certs"], secrets=[params["access_token"]])

        body = request_body(action, params["email"], params["create_user"])
        started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
        response = trigger(auth, action, body)
        if response.status_code == 429:
            wait = _WAIT_SECONDS.search(answer_text(response))
            if wait and int(wait.group(1)) <= params["rate_limit_wait"]:
                time.sleep(int(wait.group(1)) + 0.5)
                started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
                response = trigger(auth, action, body)

        delivery["http_status"] = response.status_code
        delivery["request_id"] = response.headers.get("X-Request-Id") or response.headers.get("sb-request-id")
        if response.status_code in (200, 201):
            delivery["status"] = "sent"
        elif response.status_code == 429:
            delivery.update(status="rate_limited", error=answer_text(response))
        elif response.status_code >= 500:
            delivery.update(status="failed", error=answer_text(response))
            line = read_failure_from_logs(module, management, params["email"], delivery["request_id"], started)
            if line:
                delivery.update(error=line.get("error"), log_line=line)
        else:
            delivery.update(status="failed", error="HTTP %d: %s" % (response.status_code, answer_text(response)))
    except ApiError as error:
        module.fail_api(error, management.explain(error))

    if delivery["status"] in ("failed", "rate_limited"):
        delivery["error_class"], delivery["hint"] = classify_failure(delivery["error"])
        if params["fail_on_error"]:
            module.fail_json(
                msg="Supabase Auth could not send the %s mail to %s: %s [%s] %s" % (
                    MAIL_NAMES[action], params["email"], delivery["error"], delivery["error_class"],
                    delivery["hint"]),
                delivery=delivery)
    module.exit_json(changed=False, delivery=delivery)


def main():
    run_module()


if __name__ == "__main__":
    main()
