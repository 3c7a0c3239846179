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
    it (credentials, sender not verified, TLS or port mismatch, ...) with a fix. The log line is
    the one whose C(request_id) is the C(error_id) of Auth's answer; when the answer has none,
    the newest error line for the test address or the endpoint.
  - The mail request is sent once; only a refusal Auth did not process (HTTP 429 with a wait,
    see O(rate_limit_wait)) is sent again, so a run never sends two mails.
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
      - The project's public (anon or publishable) API key, sent as C(apikey); used by every
        O(action) but V(invite).
      - When omitted it is read with the Management API (the access token needs C(secrets:read)).
    type: str
  service_role_key:
    description:
      - The project's secret key (C(sb_secret_...)) or legacy C(service_role) key; used only by
        O(action=invite).
      - A secret key is sent as C(apikey) alone (Supabase accepts a secret key in
        C(Authorization) only when it equals C(apikey)); a legacy C(service_role) key, a JWT, is
        sent as both C(apikey) and C(Authorization) C(Bearer).
      - When omitted it is read with the Management API (the access token needs C(secrets:read)).
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
      - V(signup) creates an unconfirmed user with a random throwaway password (64 characters
        with lowercase and uppercase letters, digits and symbols, so that any
        C(password_required_characters) or C(password_min_length) up to 64 accepts it) and sends
        the confirmation mail. Auth answers success without a mail when the address already has
        a confirmed user, or when email confirmation is off (C(mailer_autoconfirm)); the module
        then reports RV(delivery.status=not_sent).
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
      - When Auth refuses because the same address got a mail too recently
        (C(smtp_max_frequency), HTTP 429 "you can only request this after N seconds"), wait the N
        seconds Auth names if N is at most this many, and send again; otherwise report
        RV(delivery.status=rate_limited).
      - A project-wide hourly limit (C(rate_limit_email_sent)) names no wait and is reported at
        once. V(0) never waits. The wait is not counted against O(timeout).
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
      description:
        - V(sent) (Auth handed it to the SMTP server), V(failed), V(rate_limited), V(skipped) (check mode),
          or V(not_sent).
        - V(not_sent) - Auth answered success but sent nothing; only O(action=signup), for an address that
          already has a confirmed user or with email confirmation off. RV(delivery.error) says why and
          RV(delivery.hint) what to do (use O(action=otp) or O(action=recover), or another address).
          O(fail_on_error) fails on it like on V(failed).
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
      description:
        - The C(error_id) of Auth's failed (HTTP 5xx) answer, which is the C(request_id) of the request's
          Auth log lines; V(null) when Auth named none (it sends no request ID on success).
      type: str
      sample: 5f0c5a3e-2b4e-4c1e-9a57-1d8a0a6f4c11
    error:
      description:
        - The SMTP error text from the Auth logs (or Auth's answer when no log line came).
        - For V(not_sent), why no mail went out.
      type: str
      sample: "gomail: could not send email 1: 550-From header sender domain not verified (ro.ru)"
    error_class:
      description:
        - The failure class, one of auth-rejected, auth-unavailable, sender-rejected, recipient-rejected,
          tls-mismatch, tls-certificate, starttls-unavailable, dns, connection-refused, connect-timeout,
          rate-limited, relay-refused, unknown.
        - Not set for V(sent) and V(not_sent).
      type: str
      sample: sender-rejected
    hint:
      description: What to do about it (also for V(not_sent)).
      type: str
      sample: "The relay refuses the From address: verify it (click the link the relay mailed to it) or verify its domain, then retry."
    log_line:
      description: The Auth log line the error came from, when found.
      type: dict
"""

import datetime
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
    throwaway_password,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._validate import (
    check_api_options,
    check_credential,
    check_email,
    check_url,
    check_pattern,
    check_range,
    first_problem,
)

MAIL_NAMES = {"otp": "magic link", "signup": "confirmation", "invite": "invite", "recover": "recovery"}
LOG_POLL_INTERVAL = 3.0
# Log levels GoTrue gives a 4xx (a 429 before the retry, say), never a failed send.
_NOT_FAILURE_LEVELS = ("debug", "info", "warn", "warning")


def request_body(action, email, create_user):
    if action == "otp":
        return {"email": email, "create_user": create_user}
    if action == "signup":
        # A throwaway password: the test user signs in with the mailed link, never with this. It
        # meets any password_required_characters / password_min_length policy.
        return {"email": email, "password": throwaway_password()}
    return {"email": email}


def trigger(auth, action, body):
    """POST the Auth endpoint. Only a 429 is retried (it was not processed; the client waits
    the time GoTrue names, up to rate_limit_wait): any other retry could send a second mail."""
    return auth.request("POST", "/auth/v1/%s" % action, json_body=body, idempotent=False, expected=(200, 201))


def signup_not_sent(answer):
    """(why, what to do) when a signup's 200 answer shows that no confirmation mail went out, else None.

    GoTrue answers a signup 200 without mailing when `mailer_autoconfirm` is on (a session, or a
    user never sent a confirmation) and, for an address that already has a confirmed user, with
    "an obfuscated/fake user object that has an empty identities list"
    (https://supabase.com/docs/reference/swift/v3/auth-signup; supabase/auth
    internal/api/signup.go sanitizeUser, which also sets confirmation_sent_at to now).
    """
    if not isinstance(answer, dict):
        return None
    user = answer.get("user") if isinstance(answer.get("user"), dict) else answer
    if answer.get("access_token") or (user.get("email_confirmed_at") and not user.get("confirmation_sent_at")):
        return ("Supabase Auth confirmed the new user at once and sent no mail: email confirmation is off "
                "(mailer_autoconfirm).",
                "Use action=otp or action=recover, which always mail, or turn email confirmation on.")
    if (isinstance(user.get("identities"), list) and not user["identities"]) or not user.get("confirmation_sent_at"):
        return ("Supabase Auth answered 200 but sent no mail: the address already belongs to a user "
                "(a repeated signup is answered without a mail).",
                "Use action=otp or action=recover for this address, or action=signup with an address that has no user.")
    return None


def find_failure_line(lines, email, action, request_id, since_us):
    """The Auth log line that explains this request's failure, or None.

    With the failed answer's error_id, only the line of that request (its `request_id`);
    without one, the newest error line for this address, or for this endpoint.
    """
    for line in lines:
        if not isinstance(line, dict) or not line.get("error"):
            continue
        stamp = line.get("timestamp")
        if isinstance(stamp, (int, float)) and stamp < since_us:
            continue
        if request_id:
            if line.get("request_id") == request_id:
                return line
            continue
        if line.get("level") in _NOT_FAILURE_LEVELS:
            continue
        actor = (line.get("auth_event") or {}).get("actor_username")
        if actor == email or line.get("path") == "/%s" % action:
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


def auth_client(module, management):
    """The Auth client with the key the action needs, read with the Management API when not given."""
    params = module.params
    ref, action = params["project_ref"], params["action"]
    wanted = "service_role" if action == "invite" else "anon"
    key = params["service_role_key"] if action == "invite" else params["anon_key"]
    if not key:
        key = pick_api_key(management.get_api_keys(ref), wanted)
        # A key read here is as secret as one given: mask it in whatever Auth or its logs echo.
        management.redact.add(key)
    if not key:
        module.fail_json(msg="project_ref=%s has no %s; pass %s." % (
            ref, "secret (or service_role) API key" if action == "invite" else "anon or publishable API key",
            "service_role_key" if action == "invite" else "anon_key"))
    options = dict(project_ref=ref, timeout=params["timeout"], validate_certs=params["validate_certs"],
                   rate_limit_wait=params["rate_limit_wait"],
                   secrets=[params["access_token"], params["anon_key"], params["service_role_key"]])
    auth_url = params["auth_url"] or "https://%s.supabase.co" % ref
    if action == "invite":
        return SupabaseAuthClient.admin(auth_url, key, **options)
    return SupabaseAuthClient(auth_url, key, **options)


def send_test_mail(module, management, auth, delivery):
    """Trigger the mail and fill `delivery` from Auth's answer (and its log line on a 5xx)."""
    params = module.params
    action = params["action"]
    body = request_body(action, params["email"], params["create_user"])
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    try:
        answer = trigger(auth, action, body)
    except ApiError as error:
        if error.status is None:  # no answer: nothing to classify, and the mail may have gone
            module.fail_api(error, auth.explain(error))
        delivery.update(http_status=error.status, request_id=error.request_id,
                        error=error.provider_message or error.message)
        if error.status == 429:
            delivery["status"] = "rate_limited"
        elif error.status >= 500:
            delivery["status"] = "failed"
            line = read_failure_from_logs(module, management, params["email"], error.request_id, started)
            if line:
                delivery.update(error=line.get("error"), log_line=line)
        else:
            delivery.update(status="failed", error=error.message)
        delivery["error_class"], delivery["hint"] = classify_failure(delivery["error"])
        if delivery["error_class"] == "unknown" and auth.advice(error):
            delivery["hint"] = auth.advice(error)
        elif delivery["error_class"] == "unknown" and error.status >= 500 and not delivery["log_line"]:
            # A gateway's 502/503 or an Auth crash: nothing about the mail settings to fix.
            delivery["hint"] = ("Supabase Auth answered HTTP %d to /auth/v1/%s and logged nothing for it: a server or "
                                "gateway error, not the mail settings; run the task again in a few minutes."
                                % (error.status, action))
        return
    delivery["http_status"] = 200
    not_sent = signup_not_sent(answer) if action == "signup" else None
    if not_sent:
        delivery.update(status="not_sent", error=not_sent[0], hint=not_sent[1])
    else:
        delivery["status"] = "sent"


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
        check_api_options(params, "api_url", "access_token"),
        check_url("auth_url", params["auth_url"]),
        check_credential("anon_key", params["anon_key"]),
        check_credential("service_role_key", params["service_role_key"]),
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
        auth = auth_client(module, management)
        send_test_mail(module, management, auth, delivery)
    except ApiError as error:  # the Management API: API keys or logs
        module.fail_api(error, management.explain(error))

    # Auth's answer and its log lines may echo the request, keys included: mask every known secret.
    delivery = management.redact.data(delivery)
    if delivery["status"] != "sent" and params["fail_on_error"]:
        if delivery["status"] == "not_sent":
            msg = "Supabase Auth sent no %s mail to %s: %s %s" % (
                MAIL_NAMES[action], params["email"], delivery["error"], delivery["hint"])
        else:
            msg = "Supabase Auth could not send the %s mail to %s: %s [%s] %s" % (
                MAIL_NAMES[action], params["email"], delivery["error"], delivery["error_class"], delivery["hint"])
        module.fail_json(msg=msg, delivery=delivery)
    module.exit_json(changed=False, delivery=delivery)


def main():
    run_module()


if __name__ == "__main__":
    main()
