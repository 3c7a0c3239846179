"""The fault matrix of issue 12: every module that writes, against every fault, in one playbook run.

Each cell is one module task against the sandbox with one fault queued on the module's write (the
create, the PATCH, the Auth mail). Every cell has an account, project or name of its own and its fault
is aimed at its write by a token in the request body (`body_contains`) or path, so all faults are
queued before the run and the cells run in parallel, one inventory host each. After the run the
emulators' state and the journal say, per cell: recovered, failed clearly, duplicated, lost a
once-shown secret, or ran past its time bound (and, for cells that would hide a defect, "failed
unclearly", "wrong result" or "fault missed").
"""

import json
import os
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass, field

import yaml

from tests.integration.playbook import run_playbook_file

TIMEOUT = 3  # the modules' `timeout`: short, so the slow-answer cells cost little (they run side by side)
SLOW = TIMEOUT + 0.5  # an answer slower than the timeout
# Time bound, from the faulted write: 2 x timeout (all tries of one request, the docs' promise) plus
# SLACK to the cell's last request (the unfaulted requests after it), and plus TASK_SLACK to the end of
# the task as the controller saw it (module exit, and the controller's lag on a loaded machine).
SLACK = 1.0
TASK_SLACK = 4.0
FORKS = 12

FAULTS = ("429", "500", "502", "503", "drop", "delay", "drop_answer")
VERDICTS = ("recovered", "failed clearly", "failed unclearly", "wrong result", "duplicated", "lost secret",
            "over time", "fault missed")
MUST_BE_ZERO = ("duplicated", "lost secret", "over time", "failed unclearly", "wrong result", "fault missed")

# A clear failure says what to do: one of these phrases.
ADVICE = re.compile(r"run (the task |it |this task |the playbook )?again|rerun|re-run|\bwait\b|raise timeout|"
                    r"raise rate_limit_wait|try again|\bdelete\b|\bcheck\b", re.IGNORECASE)

MODULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plugins", "modules")
# Modules that read only (nothing to duplicate or lose); a module that also writes must not be here.
READ_ONLY = {
    "mailgun_domain_info": "reads a Mailgun domain",
    "sender_domain_check": "DNS lookups only",
    "smtp_check": "SMTP probe; its optional send is SMTP, not an API write",
}


def writing_modules(directory=MODULES_DIR):
    """{module: writes?}. A module writes when it is on the write engine or sends a non-idempotent
    request of its own (supabase_email_test's Auth mail)."""
    found = {}
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".py") or entry.startswith("_"):
            continue
        with open(os.path.join(directory, entry)) as handle:
            source = handle.read()
        found[entry[:-3]] = "ManagedObject" in source or "idempotent=False" in source
    return found


# --- the per-module table: how to call each writing module against the sandbox ------------------------

@dataclass
class Observed:
    """What the emulator holds for one cell after the run."""
    count: int  # objects of the cell's identity (or writes the emulator handled, for a mail)
    expected_secret: object = None  # the once-shown secret the provider holds, or None
    state_ok: bool = True  # the object is as asked (looked at only when the task succeeded)


@dataclass
class Cell:
    module: str
    fault: str
    token: str  # unique per cell: in the object's name, so in the body of its write
    args: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)
    fault_id: int = None

    @property
    def id(self):
        return "%s_%s" % (self.module, self.fault)


class ModuleCase:
    """How one module is called in the matrix: its service, its write, its arguments, what to look at.
    Every cell gets an account (project, team) of its own, so parallel cells share no rate limit."""
    module = None
    service = None
    provider_words = ()  # how a clear message names the service
    call_words = ()  # how a clear message names the call (its path, or the object)
    write = {}  # method and path_contains of the write the faults hit
    secret_key = None  # result key of a secret shown once (generated or a new API key)

    def cell_args(self, sandbox, cell):
        """The module's arguments for one cell; `cell.token` goes into the object's name."""
        raise NotImplementedError

    def observe(self, sandbox, cell):
        raise NotImplementedError

    def fault_target(self, cell):
        return dict(self.write, body_contains=cell.token)

    def new_cell(self, sandbox, fault):
        cell = Cell(self.module, fault, "fm%s" % secrets.token_hex(4))
        cell.args = dict(self.cell_args(sandbox, cell), timeout=TIMEOUT)
        return cell


class SupabaseSmtp(ModuleCase):
    module = "supabase_smtp"
    service = "supabase_api"
    provider_words = ("Supabase",)
    call_words = ("/config/auth", "SMTP settings")
    write = {"method": "PATCH"}
    PASSWORD = "Fault-matrix-pass-7d3a"

    def new_project(self, sandbox, cell):
        ref, access_token = sandbox.add_supabase_project()
        cell.context["ref"] = ref
        return {"api_url": sandbox.url("supabase_api"), "access_token": access_token, "project_ref": ref}

    def cell_args(self, sandbox, cell):
        return dict(self.new_project(sandbox, cell), host="mail.smtp2go.com", port=465, username=cell.token,
                    password=self.PASSWORD, sender_email="karto.help@ro.ru", sender_name="KARTO")

    def fault_target(self, cell):
        return dict(self.write, path_contains=cell.context["ref"])

    def observe(self, sandbox, cell):
        config = sandbox.supabase_auth_config(cell.context["ref"])
        # One config per project: a second PATCH sets the same values, nothing to duplicate.
        return Observed(count=1, state_ok=config["smtp_user"] == cell.token and config["smtp_pass"] == self.PASSWORD)


class SupabaseEmailTemplates(SupabaseSmtp):
    module = "supabase_email_templates"
    call_words = ("/config/auth", "template")

    def cell_args(self, sandbox, cell):
        return dict(self.new_project(sandbox, cell), templates={"magic_link": {"subject": "Sign in " + cell.token}})

    def observe(self, sandbox, cell):
        config = sandbox.supabase_auth_config(cell.context["ref"])
        return Observed(count=1, state_ok=config["mailer_subjects_magic_link"] == "Sign in " + cell.token)


class SupabaseEmailTest(ModuleCase):
    module = "supabase_email_test"
    service = "supabase_auth"
    provider_words = ("Supabase",)
    call_words = ("/auth/v1/otp", "magic link")
    write = {"method": "POST", "path_contains": "/auth/v1/otp"}

    def cell_args(self, sandbox, cell):
        # The project's built-in mailer (custom SMTP off) mails its team members.
        ref, access_token = sandbox.add_supabase_project()
        email = "%s@karto.test" % cell.token
        sandbox.add_team_member(ref, email)
        cell.context.update(ref=ref, email=email)
        return {"api_url": sandbox.url("supabase_api"), "auth_url": sandbox.url("supabase_auth"),
                "access_token": access_token, "project_ref": ref, "email": email, "log_timeout": 0}

    def observe(self, sandbox, cell):
        # Mails Auth sent: the otp requests it handled (a delayed or lost answer included).
        handled = [e for e in sandbox.journal(service=self.service, path_contains="/otp")
                   if (e.get("json") or {}).get("email") == cell.context["email"] and not e["fault"]
                   and e["status"] == 200]
        return Observed(count=len(handled))


class Smtp2goUser(ModuleCase):
    module = "smtp2go_user"
    service = "smtp2go_api"
    provider_words = ("SMTP2GO",)
    call_words = ("/users/smtp/add", "SMTP user")
    write = {"method": "POST", "path_contains": "/users/smtp/add"}
    secret_key = "password"  # no password given: SMTP2GO generates one and shows it once

    def cell_args(self, sandbox, cell):
        cell.context["api_key"] = sandbox.add_smtp2go_account()
        return {"api_url": sandbox.url("smtp2go_api"), "api_key": cell.context["api_key"], "username": cell.token}

    def observe(self, sandbox, cell):
        users = [u for u in sandbox.smtp2go_account(cell.context["api_key"])["users"] if u["username"] == cell.token]
        return Observed(count=len(users), expected_secret=users[0]["email_password"] if users else None)


class Smtp2goSender(ModuleCase):
    module = "smtp2go_sender"
    service = "smtp2go_api"
    provider_words = ("SMTP2GO",)
    call_words = ("/single_sender_emails/add", "sender")
    write = {"method": "POST", "path_contains": "/single_sender_emails/add"}

    def cell_args(self, sandbox, cell):
        cell.context.update(api_key=sandbox.add_smtp2go_account(), email="%s@karto.test" % cell.token)
        return {"api_url": sandbox.url("smtp2go_api"), "api_key": cell.context["api_key"],
                "email_address": cell.context["email"]}

    def observe(self, sandbox, cell):
        senders = sandbox.smtp2go_account(cell.context["api_key"])["senders"]
        # Each add mails a verification link: a second mail is a duplicated write.
        return Observed(count=max(len(senders), sum(s["verification_mail_count"] for s in senders)))


class SendgridApiKey(ModuleCase):
    module = "sendgrid_api_key"
    service = "sendgrid_api"
    provider_words = ("SendGrid",)
    call_words = ("/v3/api_keys", "API key")
    write = {"method": "POST", "path_contains": "/v3/api_keys"}
    secret_key = "api_key"

    def cell_args(self, sandbox, cell):
        cell.context["api_key"] = sandbox.control("POST", "/sendgrid/accounts", {})["api_key"]
        return {"api_url": sandbox.url("sendgrid_api"), "api_key": cell.context["api_key"], "name": cell.token}

    def observe(self, sandbox, cell):
        keys = [k for k in sandbox.control("GET", "/sendgrid/accounts/%s" % cell.context["api_key"])["keys"]
                if k.get("name") == cell.token]
        return Observed(count=len(keys), expected_secret=keys[0]["api_key"] if keys else None)


class SendgridSender(ModuleCase):
    module = "sendgrid_sender"
    service = "sendgrid_api"
    provider_words = ("SendGrid",)
    call_words = ("/v3/verified_senders", "single sender")
    write = {"method": "POST", "path_contains": "/v3/verified_senders"}

    def cell_args(self, sandbox, cell):
        cell.context["api_key"] = sandbox.control("POST", "/sendgrid/accounts", {})["api_key"]
        return {"api_url": sandbox.url("sendgrid_api"), "api_key": cell.context["api_key"],
                "from_email": "%s@karto.test" % cell.token, "check_domain": False}

    def observe(self, sandbox, cell):
        senders = sandbox.control("GET", "/sendgrid/accounts/%s" % cell.context["api_key"])["senders"]
        return Observed(count=max(len(senders), sum(s["verification_mail_count"] for s in senders)))


class ResendApiKey(ModuleCase):
    module = "resend_api_key"
    service = "resend_api"
    provider_words = ("Resend",)
    call_words = ("/api-keys", "API key")
    write = {"method": "POST", "path_contains": "/api-keys"}
    secret_key = "token"

    def cell_args(self, sandbox, cell):
        cell.context["api_key"] = sandbox.control("POST", "/resend/accounts", {})["api_key"]
        return {"api_url": sandbox.url("resend_api"), "api_key": cell.context["api_key"], "name": cell.token}

    def observe(self, sandbox, cell):
        keys = [k for k in sandbox.control("GET", "/resend/accounts/%s" % cell.context["api_key"])["keys"]
                if k.get("name") == cell.token]
        return Observed(count=len(keys), expected_secret=keys[0]["token"] if keys else None)


class ResendDomain(ModuleCase):
    module = "resend_domain"
    service = "resend_api"
    provider_words = ("Resend",)
    call_words = ("/domains", "domain")
    write = {"method": "POST", "path_contains": "/domains"}

    def cell_args(self, sandbox, cell):
        cell.context["api_key"] = sandbox.control("POST", "/resend/accounts", {})["api_key"]
        return {"api_url": sandbox.url("resend_api"), "api_key": cell.context["api_key"],
                "name": "%s.karto.test" % cell.token, "verify": False}

    def observe(self, sandbox, cell):
        domains = sandbox.control("GET", "/resend/accounts/%s" % cell.context["api_key"])["domains"]
        return Observed(count=len(domains))


class MailgunSmtpCredential(ModuleCase):
    module = "mailgun_smtp_credential"
    service = "mailgun_api"
    provider_words = ("Mailgun",)
    call_words = ("/credentials", "credential")
    write = {"method": "POST", "path_contains": "/credentials"}
    secret_key = "password"  # no password given: Mailgun generates one and shows it once

    def cell_args(self, sandbox, cell):
        api_key = sandbox.control("POST", "/mailgun/accounts", {})["api_key"]
        domain = "mg-%s.karto.test" % cell.token
        sandbox.control("POST", "/mailgun/domains", {"api_key": api_key, "name": domain, "state": "active"})
        cell.context.update(api_key=api_key, domain=domain)
        return {"api_url": sandbox.url("mailgun_api"), "api_key": api_key, "domain": domain, "login": cell.token}

    def observe(self, sandbox, cell):
        state = sandbox.control("GET", "/mailgun/accounts/%s" % cell.context["api_key"])
        domain = next(d for d in state["domains"] if d["name"] == cell.context["domain"])
        found = domain["credentials"]
        return Observed(count=len(found), expected_secret=found[0]["password"] if found else None)


CASES = {case.module: case for case in (SupabaseSmtp(), SupabaseEmailTemplates(), SupabaseEmailTest(),
                                        Smtp2goUser(), Smtp2goSender(), SendgridApiKey(), SendgridSender(),
                                        ResendApiKey(), ResendDomain(), MailgunSmtpCredential())}


def rate_limited(service):
    """The rest of a 429 fault, as the service's own 429 looks where the client reads the wait from
    the body. Rate-limit headers come from the emulator (`HttpService.fault_headers`)."""
    if service == "mailgun_api":
        from tests.sandbox.mailgun_api import TOO_MANY_TEXT  # the emulator's (Mailgun's) own 429 text
        return {"body": {"message": TOO_MANY_TEXT.format(seconds=1)}}
    if service == "smtp2go_api":
        from tests.sandbox.smtp2go_api import ERR_RATE_LIMITED  # SMTP2GO's error shape; it sends no headers
        return {"body": {"request_id": secrets.token_hex(8), "data": {"error": "Too many requests",
                                                                      "error_code": ERR_RATE_LIMITED}}}
    return {}


def fault_spec(case, cell):
    spec = dict(case.fault_target(cell), service=case.service, times=1)
    if cell.fault == "429":
        spec.update(action="status", status=429, **rate_limited(case.service))
    elif cell.fault in ("500", "502", "503"):
        spec.update(action="status", status=int(cell.fault))
    elif cell.fault == "delay":
        spec.update(action="delay", seconds=SLOW)
    else:
        spec.update(action=cell.fault)
    return spec


# --- the run ---------------------------------------------------------------------------------------------

# Times each cell's module task on the controller (start when a worker takes it, end when its result
# arrives), without a task of its own: an extra task per cell would cost a process each.
TIMING_CALLBACK = """
import json, os, time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fault_matrix_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.times = {}

    def _cell(self, task):
        return task.action.startswith("karto.supabase_mail.")

    def v2_runner_on_start(self, host, task):
        if self._cell(task):
            self.times.setdefault(host.get_name(), {})["t0"] = time.time()

    def _end(self, result):
        if self._cell(result._task):
            self.times.setdefault(result._host.get_name(), {})["t1"] = time.time()

    def v2_runner_on_ok(self, result):
        self._end(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._end(result)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["FAULT_MATRIX_TIMES"], "w") as handle:
            json.dump(self.times, handle)
"""


def run_cells(sandbox, cells):
    """Queue every cell's fault, then run all cells in one ansible-playbook, a host per cell, FORKS at a
    time. Returns {cell id: {"result", "t0", "t1"}} (t0, t1: epoch seconds around the module task)."""
    for case, cell in cells:
        cell.fault_id = sandbox.inject_fault(**fault_spec(case, cell))
    hosts = {cell.id: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "fm_module": cell.module, "fm_args": cell.args} for _case, cell in cells}
    options = sorted({key for _case, cell in cells for key in cell.args})
    with tempfile.TemporaryDirectory(prefix="karto-faults-") as tmp:
        results, times = os.path.join(tmp, "results.json"), os.path.join(tmp, "times.json")
        # One task for every host, the module named per host: all cells run side by side, FORKS at a time.
        cell_task = {"name": "Cell", "action": dict(
            {key: "{{ fm_args[%r] | default(omit) }}" % key for key in options},
            module="karto.supabase_mail.{{ fm_module }}"), "register": "fm_result", "ignore_errors": True, "no_log": True}
        write_yaml(os.path.join(tmp, "play.yml"), [
            {"name": "Fault matrix", "hosts": "cells", "gather_facts": False, "tasks": [cell_task]},
            {"name": "Collect", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
                {"name": "Dump", "ansible.builtin.copy": {"dest": results, "mode": "0600", "content": (
                    "{{ dict(groups.cells | zip(groups.cells | map('extract', hostvars, 'fm_result'))) | to_json }}")}}]}])
        write_yaml(os.path.join(tmp, "hosts.yml"), {"cells": {"hosts": hosts}})
        os.makedirs(os.path.join(tmp, "callbacks"))
        with open(os.path.join(tmp, "callbacks", "fault_matrix_timing.py"), "w") as handle:
            handle.write(TIMING_CALLBACK)
        env = {"ANSIBLE_CALLBACK_PLUGINS": os.path.join(tmp, "callbacks"),
               "ANSIBLE_CALLBACKS_ENABLED": "fault_matrix_timing", "FAULT_MATRIX_TIMES": times}
        proc, _log = run_playbook_file(os.path.join(tmp, "play.yml"),
                                       ["-i", os.path.join(tmp, "hosts.yml"), "-f", str(FORKS)], env=env, timeout=600)
        assert proc.returncode == 0 and os.path.exists(results), proc.stdout[-3000:] + proc.stderr[-3000:]
        with open(results) as handle:
            dumped = json.load(handle)
        with open(times) as handle:
            timed = json.load(handle)
    return {name: dict(timed[name], result=result) for name, result in dumped.items()}


def write_yaml(path, data):
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)


# --- judging ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    cell: Cell
    verdict: str
    elapsed: float  # from the faulted write to the cell's last request
    to_end: float  # from the faulted write to the end of the task
    task_seconds: float  # the whole task, module start-up included
    detail: str


def failure_is_clear(case, result):
    """(clear, why not): names the service and the call, says what to do, and no traceback."""
    msg = str(result.get("msg") or "")
    # Ansible fills `exception` with "(traceback unavailable)" on every fail_json; a real one says so.
    if result.get("module_stderr") or "Traceback (most recent call last)" in str(result.get("exception")) + msg:
        return False, "traceback"
    if not any(word in msg for word in case.provider_words):
        return False, "does not name the service"
    if not any(word in msg for word in case.call_words):
        return False, "does not name the call"
    if not ADVICE.search(msg):
        return False, "does not say what to do"
    return True, ""


def judge(sandbox, case, cell, ran, journal):
    """The cell's verdict; `journal` is every entry of the run, `ran` what run_cells returned for it."""
    result = ran["result"]
    hit = [e for e in journal if e.get("fault_id") == cell.fault_id]
    if not hit:
        return Outcome(cell, "fault missed", 0.0, 0.0, ran["t1"] - ran["t0"],
                       "the fault never hit its request: the cell proves nothing")
    # Journalled when answered: a delayed write was sent SLOW seconds before.
    sent = hit[0]["time"] - (SLOW if cell.fault == "delay" else 0.0)
    # The cell's requests: those with the write's credential (every cell has its own account), or naming
    # its object or project.
    marks = [cell.token] + [cell.context[key] for key in ("ref",) if key in cell.context]
    mine = [e for e in journal if e["time"] >= sent - 0.01 and (
        e.get("client") == hit[0].get("client") or any(mark in e["path"] + json.dumps(e.get("json")) for mark in marks))]
    elapsed = max(e["time"] for e in mine) - sent
    to_end = ran["t1"] - sent
    observed = case.observe(sandbox, cell)
    msg = str(result.get("msg") or "")[:400]

    def outcome(verdict, detail):
        return Outcome(cell, verdict, elapsed, to_end, ran["t1"] - ran["t0"], detail.replace("\n", " "))

    if elapsed > 2 * TIMEOUT + SLACK or to_end > 2 * TIMEOUT + TASK_SLACK:
        return outcome("over time", msg)
    if observed.count > 1:
        return outcome("duplicated", "%d objects or writes; %s" % (observed.count, msg))
    if observed.expected_secret is not None and result.get(case.secret_key) != observed.expected_secret:
        return outcome("lost secret", msg or "the result lacks the secret the provider holds")
    if result.get("failed"):
        clear, why = failure_is_clear(case, result)
        return outcome("failed clearly" if clear else "failed unclearly", msg if clear else "%s: %s" % (why, msg))
    if observed.count != 1 or not observed.state_ok:
        return outcome("wrong result", "ok, but the provider holds %d (as asked: %s)"
                       % (observed.count, observed.state_ok))
    return outcome("recovered", " / ".join(result.get("warnings") or [])[:400])


def table(outcomes, providers):
    """The matrix as Markdown: modules down, faults across, then the totals and each cell's detail."""
    modules = list(dict.fromkeys(o.cell.module for o in outcomes))
    by_cell = {(o.cell.module, o.cell.fault): o for o in outcomes}
    lines = ["# Fault matrix", "",
             "Every module that writes, with one fault on its write; `timeout: %d`, a slow answer takes %.1f s. "
             "Time bound, from the faulted write: 2 x timeout + %.1f s to the cell's last request, and + %.1f s "
             "to the end of the task as the controller saw it. Registered providers: %s. Seconds in a cell: "
             "from the faulted write to the cell's last request."
             % (TIMEOUT, SLOW, SLACK, TASK_SLACK, ", ".join(providers)), "",
             "| module | " + " | ".join(FAULTS) + " |", "| --- |" + " --- |" * len(FAULTS)]
    for module in modules:
        lines.append("| %s | %s |" % (module, " | ".join(
            "%s (%.1f s)" % (by_cell[(module, fault)].verdict, by_cell[(module, fault)].elapsed)
            if (module, fault) in by_cell else "-" for fault in FAULTS)))
    lines += ["", summary(outcomes), "", "## Cells", ""]
    for o in outcomes:
        lines.append("- **%s / %s**: %s; from the write %.1f s to the last request, %.1f s to the end of the task "
                     "(%.1f s the whole task). %s" % (o.cell.module, o.cell.fault, o.verdict, o.elapsed, o.to_end,
                                                      o.task_seconds, o.detail))
    return "\n".join(lines) + "\n"


def summary(outcomes):
    counts = {verdict: sum(1 for o in outcomes if o.verdict == verdict) for verdict in VERDICTS}
    return "Totals over %d cells: %s." % (len(outcomes), ", ".join("%s %d" % item for item in counts.items()))
