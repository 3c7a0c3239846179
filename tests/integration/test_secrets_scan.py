"""The secrets scan (issue 12, item 2): no password, API key, token or service-role key in anything
a run shows, in any encoding.

Every module runs at -vvvv with --diff and ANSIBLE_LOG_PATH set: as it should succeed, in check
mode, and failing (a 500 whose body echoes the request, a refused SMTP login, an unverified sender,
a bad token or key). setup-mail.yml runs once over one project per registered provider plus a
project per failure mode, then teardown-mail.yml in check mode over the same projects.
stdout, stderr, the log file and the registered results are searched for every secret of the run
in every encoding `Secret.encodings` lists. The only secret allowed out is the one a module
documents as shown once (`api_key`, `token`, a generated `password`), in that result field only.
One run per (playbook or module set, mode); each run is scanned over all channels at once.
"""

import base64
import json
import re
import secrets
import string
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import pytest
import yaml

from scripts.demo import sandbox_probe_vars
from tests.collection_path import make_importable
from tests.integration.playbook import run_playbook_file

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay  # noqa: E402 pylint: disable=wrong-import-position

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy

# --- the scan: a secret's disguises, and where they are looked for --------------------------------

# A key's public type tag (sbp_, api-, re_, SG., sb_secret_, key-): the same for every key of its
# kind, so it is no part of what a prefix must not reveal.
# A JWT's header (up to the first dot) is the same for every key of a project too.
_TAG = re.compile(r"eyJ[A-Za-z0-9_-]+\.|(?:[A-Za-z]{1,9}[_.-])+")
PREFIX_CHARS = 8


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _json_escaped(text, ascii_only=True):
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


@dataclass
class Secret:
    name: str
    value: str
    # The SMTP login that goes with it (AUTH PLAIN carries both), and the HTTP Basic user.
    smtp_user: str = None
    basic_user: str = None

    def tag_length(self):
        tag = _TAG.match(self.value)
        return len(tag.group(0)) if tag and len(tag.group(0)) < len(self.value) - PREFIX_CHARS else 0

    def encodings(self):
        """{encoding: [needles]}; the `prefix` needles are the first characters of the raw,
        escaped and URL forms, which a truncated echo ("the first 24 characters") would show."""
        value = self.value
        forms = {
            "raw": [value],
            "json": [_json_escaped(value, False)],
            "json \\uXXXX": [_json_escaped(value, True)],
            # A JSON-escaped value inside the JSON of -vvvv results, or of a log line.
            "json twice": [_json_escaped(_json_escaped(value, False), False),
                           _json_escaped(_json_escaped(value, True), True)],
            "repr": [repr(value)[1:-1]],
            "url": [quote(value, safe=""), quote_plus(value)],
            "base64 LOGIN": [_b64(value)],
        }
        if self.smtp_user is not None:
            forms["base64 AUTH PLAIN"] = [_b64("\0%s\0%s" % (self.smtp_user, value)),
                                          _b64("%s\0%s\0%s" % (self.smtp_user, self.smtp_user, value))]
        if self.basic_user is not None:
            forms["base64 HTTP Basic"] = [_b64("%s:%s" % (self.basic_user, value))]
        cut = self.tag_length() + PREFIX_CHARS
        prefixes = set()
        for name in ("raw", "json", "json \\uXXXX", "json twice", "repr", "url"):
            prefixes.update(form[:cut] for form in forms[name])
        # A password's LOGIN blob starts with the encoding of its first 6 characters.
        prefixes.add(_b64(value)[:PREFIX_CHARS])
        forms["prefix"] = sorted(prefixes)
        return {name: sorted(set(needles)) for name, needles in forms.items()}


ENCODINGS = ("raw", "json", "json \\uXXXX", "json twice", "repr", "url", "base64 LOGIN",
             "base64 AUTH PLAIN", "base64 HTTP Basic", "prefix")


@dataclass
class Hit:
    run: str
    channel: str
    secret: str
    encoding: str
    context: str

    def __str__(self):
        return "%s / %s: %s as %s in ...%s..." % (self.run, self.channel, self.secret, self.encoding, self.context)


def scan(run, channels, secrets):
    """Every (channel, secret, encoding) hit; `channels` is {name: text}."""
    hits = []
    for channel, text in channels.items():
        for secret in secrets:
            for encoding, needles in secret.encodings().items():
                for needle in needles:
                    at = text.find(needle)
                    if needle and at >= 0:
                        hits.append(Hit(run, channel, secret.name, encoding, text[max(0, at - 60):at + len(needle) + 20]))
                        break
    return hits


class ScanTable:
    """Cells (run, channel, encoding) -> [needles checked, hits], printed as the scan's table."""

    def __init__(self):
        self.cells = {}

    def add(self, run, channels, secrets, hits):
        for channel in channels:
            for encoding in ENCODINGS:
                checked = sum(len(secret.encodings().get(encoding, ())) for secret in secrets)
                found = sum(1 for hit in hits if hit.channel == channel and hit.encoding == encoding)
                cell = self.cells.setdefault((run, channel, encoding), [0, 0])
                cell[0] += checked
                cell[1] += found

    def render(self):
        runs = sorted({run for run, _c, _e in self.cells})
        lines = ["%-34s %-8s " % ("run", "channel") + " ".join("%-11s" % e[:11] for e in ENCODINGS)]
        for run in runs:
            for channel in sorted({c for r, c, _e in self.cells if r == run}):
                row = []
                for encoding in ENCODINGS:
                    checked, found = self.cells.get((run, channel, encoding), (0, 0))
                    row.append("%-11s" % ("-" if not checked else "%d/%d" % (found, checked)))
                lines.append("%-34s %-8s " % (run[:34], channel) + " ".join(row))
        return "\n".join(lines)


def test_the_scan_finds_every_encoding_and_nothing_else():
    """The scan can fail: each disguise of a secret, alone in a text, is found as what it is."""
    secret = Secret("pw", 'Sc-"\\+/é%Zq81LmW0pT', smtp_user="user", basic_user="api")
    for encoding, needles in secret.encodings().items():
        for needle in needles:
            found = {hit.encoding for hit in scan("self-test", {"text": "echo: %s." % needle}, [secret])}
            assert encoding in found, (encoding, needle, found)
    near = secret.value[:secret.tag_length() + PREFIX_CHARS - 1]
    assert not scan("self-test", {"text": "echo: %s ******** sbp_ api-" % near}, [secret])


# --- the runs ------------------------------------------------------------------------------------

SENDER = "karto.help@ro.ru"
MASK = "********"
TABLE = ScanTable()


def special(prefix, length=12):
    """A password with what JSON and URLs escape (quote, backslash, +, /, non-ASCII), then random."""
    alphabet = string.ascii_letters + string.digits
    return prefix + '"\\+/é%' + "".join(secrets.choice(alphabet) for _char in range(length))


def alnum(length):
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _char in range(length))


@pytest.fixture(scope="module")
def table():
    yield TABLE
    print("\nsecrets scan: hits/needles per run, channel and encoding\n" + TABLE.render())


class Accounts:
    """Fresh accounts in every emulator, with secrets that JSON and URLs escape where allowed."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.ref, self.token = sandbox.add_supabase_project()
        self.smtp2go_key = sandbox.add_smtp2go_account(api_key="api-" + alnum(32))
        sandbox.set_smtp2go_auto_verify(0, api_key=self.smtp2go_key)
        self.sendgrid_key = sandbox.control("POST", "/sendgrid/accounts", {})["api_key"]
        sandbox.control("POST", "/sendgrid/auto-verify", {"api_key": self.sendgrid_key, "after_seconds": 0})
        self.resend_key = sandbox.control("POST", "/resend/accounts", {})["api_key"]
        sandbox.control("POST", "/resend/accounts/settings", {"api_key": self.resend_key, "auto_publish_dns": True})
        self.resend_domain = "s%s.karto.test" % secrets.token_hex(4)
        self.mailgun_key = sandbox.control("POST", "/mailgun/accounts", {})["api_key"]
        self.mailgun_domain = "mg-%s.karto.test" % secrets.token_hex(4)
        sandbox.control("POST", "/mailgun/domains", {"api_key": self.mailgun_key, "name": self.mailgun_domain,
                                                     "state": "active"})
        self.smtp_user = "scan-" + secrets.token_hex(4)
        self.smtp_password = special("Sc-", 20)
        self.mailgun_password = special("Mg-", 12)
        self.wrong_password = special("No-", 16)
        keys = sandbox.project_api_keys(self.ref)
        self.service_role_key, self.secret_key = keys["service_role"], keys["secret"]

    def secrets(self):
        return [
            Secret("supabase access_token", self.token),
            Secret("smtp2go api_key", self.smtp2go_key),
            Secret("sendgrid api_key", self.sendgrid_key),
            Secret("resend api_key", self.resend_key),
            Secret("mailgun api_key", self.mailgun_key, basic_user="api"),
            Secret("smtp password", self.smtp_password, smtp_user=self.smtp_user + "-ok"),
            Secret("mailgun password", self.mailgun_password, smtp_user="scan-ok@%s" % self.mailgun_domain),
            Secret("wrong smtp password", self.wrong_password, smtp_user=self.smtp_user + "-ok"),
            Secret("service_role key", self.service_role_key),
            Secret("secret key", self.secret_key),
        ]

    def vars(self):
        return {"token": self.token, "smtp2go_key": self.smtp2go_key, "sendgrid_key": self.sendgrid_key,
                "resend_key": self.resend_key, "mailgun_key": self.mailgun_key,
                "smtp_password": self.smtp_password, "mailgun_password": self.mailgun_password,
                "wrong_password": self.wrong_password}


@pytest.fixture(scope="module")
def accounts(sandbox):
    return Accounts(sandbox)


# The failure-play tasks whose request a 500 echoes.
ECHOED = ("smtp2go_user", "smtp2go_sender", "supabase_smtp", "supabase_email_test", "sendgrid_sender",
          "sendgrid_api_key", "resend_domain", "resend_api_key", "mailgun_smtp_credential", "mailgun_domain_info")
ONCE_SHOWN = {"sendgrid_api_key": "api_key", "resend_api_key": "token", "smtp2go_user_generated": "password",
              "mailgun_smtp_credential_generated": "password"}


def module_tasks(sandbox, acc, tag):
    """{name: (module, args)}: every module, and each secret-bearing variant of one."""
    url = sandbox.url
    relay = {"465": "127.0.0.1:%d" % sandbox.smtp_relay_port("implicit_tls"),
             "587": "127.0.0.1:%d" % sandbox.smtp_relay_port("starttls")}
    user = "%s-%s" % (acc.smtp_user, tag)
    smtp2go = {"api_url": url("smtp2go_api"), "api_key": "{{ smtp2go_key }}"}
    sendgrid = {"api_url": url("sendgrid_api"), "api_key": "{{ sendgrid_key }}"}
    resend = {"api_url": url("resend_api"), "api_key": "{{ resend_key }}"}
    mailgun = {"api_url": url("mailgun_api"), "api_key": "{{ mailgun_key }}", "domain": acc.mailgun_domain}
    supabase = {"api_url": url("supabase_api"), "access_token": "{{ token }}", "project_ref": acc.ref}
    # smtp_check logs in as the user the succeed play made.
    smtp = {"host": "mail.smtp2go.com", "ports": [465, 587], "username": acc.smtp_user + "-ok", "password": "{{ smtp_password }}",
            "sender": SENDER, "recipient": "scan+%s@karto.test" % tag, "timeout": 5, "ca_path": sandbox.ca_cert,
            "connect_to": relay}
    return {
        "smtp2go_user": ("smtp2go_user", dict(smtp2go, username=user, password="{{ smtp_password }}",
                                              update_password="always")),
        "smtp2go_user_generated": ("smtp2go_user", dict(smtp2go, username=user + "-gen")),
        # The From address the relay checks (verified at once) in the succeed play; a fresh one later.
        "smtp2go_sender": ("smtp2go_sender", dict(smtp2go, email_address=SENDER if tag == "ok" else "%s@karto.test" % user)),
        "supabase_smtp": ("supabase_smtp", dict(supabase, host="mail.smtp2go.com", port=465, username=acc.smtp_user + "-ok",
                                                password="{{ smtp_password }}", update_password="always",
                                                sender_email=SENDER, sender_name="KARTO", max_frequency=1)),
        "smtp_check": ("smtp_check", dict(smtp, send=True)),
        "supabase_email_test": ("supabase_email_test", dict(supabase, auth_url=url("supabase_auth"),
                                                            email="scan+%s@karto.test" % tag, action="invite",
                                                            log_timeout=0)),
        "sendgrid_sender": ("sendgrid_sender", dict(sendgrid, from_email="%s@karto.test" % user, from_name="KARTO",
                                                    address="1 Example Street", city="Moscow", country="Russia")),
        "sendgrid_api_key": ("sendgrid_api_key", dict(sendgrid, name="scan-%s" % tag)),
        "resend_domain": ("resend_domain", dict(resend, name="%s.%s" % (tag, acc.resend_domain))),
        "resend_api_key": ("resend_api_key", dict(resend, name="scan-%s" % tag)),
        "mailgun_smtp_credential": ("mailgun_smtp_credential", dict(mailgun, login="scan-%s" % tag,
                                                                    password="{{ mailgun_password }}",
                                                                    update_password="always")),
        "mailgun_smtp_credential_generated": ("mailgun_smtp_credential", dict(mailgun, login="scan-%s-gen" % tag)),
        "mailgun_domain_info": ("mailgun_domain_info", dict(mailgun)),
        "sender_domain_check": ("sender_domain_check", {"email": SENDER, "nameservers": ["127.0.0.1"],
                                                        "dns_port": sandbox.dns_port, "timeout": 2}),
    }


def check_tasks(sandbox, acc):
    """The modules that write, in check mode, each about to create or change something (the
    read-only ones run the same way in and out of check mode)."""
    tasks = module_tasks(sandbox, acc, "chk")
    for read_only in ("smtp_check", "supabase_email_test", "mailgun_domain_info", "sender_domain_check"):
        del tasks[read_only]
    return tasks


def failure_tasks(sandbox, acc):
    """What fails, and how: every write the modules make answered by a 500 that echoes the request
    (FAULTS), a refused SMTP login, an unverified sender, a bad token and a bad API key."""
    tasks = module_tasks(sandbox, acc, "fail")
    del tasks["sender_domain_check"], tasks["smtp2go_user_generated"], tasks["mailgun_smtp_credential_generated"]
    smtp_module, smtp = tasks["smtp_check"]
    # A new password, so the PATCH the 500 echoes carries one (an unchanged one is not sent).
    supabase = dict(tasks["supabase_smtp"][1], password="{{ wrong_password }}")
    tasks["supabase_smtp"] = ("supabase_smtp", supabase)
    tasks.update({
        "smtp_check_refused_login": (smtp_module, dict(smtp, password="{{ wrong_password }}")),
        "smtp_check_unverified_sender": (smtp_module, dict(smtp, send=True, sender="nobody@unverified.karto.test")),
        "supabase_smtp_bad_token": ("supabase_smtp", dict(supabase, access_token="{{ bad_token }}")),
        "smtp2go_user_bad_key": ("smtp2go_user", dict(tasks["smtp2go_user"][1], api_key="{{ bad_smtp2go_key }}")),
    })
    del tasks["smtp_check"]
    return tasks


def proxy_echo(*values, basic_user=None):
    """What a debugging proxy's error page quotes of a request: each secret raw, JSON-escaped (as in
    the quoted body), URL-encoded (a form body), its first 24 characters, and the HTTP Basic header.
    The fault's `echo_request` adds the real request beside it; this text sits in the field every
    client shows (`error`), so the client's redaction is what stands between it and the output."""
    parts = []
    for value in values:
        parts += [value, json.dumps({"password": value})[1:-1], quote(value, safe=""), value[:24] + "..."]
        if basic_user:
            parts.append("Authorization: Basic " + base64.b64encode(("%s:%s" % (basic_user, value)).encode()).decode())
    return "Bad gateway; upstream said it could not parse " + " | ".join(parts)


def faults(acc):
    """A 500 echoing the request for every write of the failure play (and Mailgun's domain read,
    whose echo carries the HTTP Basic header)."""
    echo = {"action": "status", "status": 500, "echo_request": True, "times": -1}
    return [dict(echo, body=body, **spec) for spec, body in (
        ({"service": "supabase_api", "method": "PATCH", "path_contains": acc.ref},
         proxy_echo(acc.token, acc.wrong_password)),
        ({"service": "supabase_auth", "method": "POST", "path_contains": "/invite"}, proxy_echo(acc.secret_key)),
        ({"service": "smtp2go_api", "path_contains": "/users/smtp/add"}, proxy_echo(acc.smtp2go_key, acc.smtp_password)),
        ({"service": "smtp2go_api", "path_contains": "/users/smtp/edit"}, proxy_echo(acc.smtp2go_key, acc.smtp_password)),
        ({"service": "smtp2go_api", "path_contains": "/single_sender_emails/add"}, proxy_echo(acc.smtp2go_key)),
        ({"service": "sendgrid_api", "method": "POST"}, proxy_echo(acc.sendgrid_key)),
        ({"service": "resend_api", "method": "POST"}, proxy_echo(acc.resend_key)),
        ({"service": "mailgun_api", "method": "POST", "path_contains": "/credentials"},
         proxy_echo(acc.mailgun_key, acc.mailgun_password, basic_user="api")),
        ({"service": "mailgun_api", "method": "PUT", "path_contains": "/credentials"},
         proxy_echo(acc.mailgun_key, acc.mailgun_password, basic_user="api")),
        ({"service": "mailgun_api", "method": "GET", "path_contains": "/v4/domains/"},
         proxy_echo(acc.mailgun_key, basic_user="api")),
    )]


def module_play(name, tasks, results_path, check=False):
    """One play of `tasks` in order, each registered, the results dumped to `results_path`."""
    play = {"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False, "diff": True,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, "tasks": []}
    if check:
        play["check_mode"] = True
    for task, (module, args) in tasks.items():
        play["tasks"].append({"name": task, "karto.supabase_mail.%s" % module: args, "register": task,
                              "ignore_errors": True})
    play["tasks"].append({"name": "Dump the results for the test", "ansible.builtin.copy": {
        "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (task, task) for task in tasks),
        "dest": str(results_path), "mode": "0600"}, "check_mode": False, "diff": False, "changed_when": False})
    return play


def sections(text):
    """{play name: its part of the output} (stdout and the log both head each play with PLAY [...])."""
    parts, name = {}, None
    for line in text.splitlines(keepends=True):
        if "PLAY [" in line:
            name = line.split("PLAY [", 1)[1].split("]", 1)[0]
        parts[name] = parts.get(name, "") + line
    return parts


def scan_run(table, name, channels, secrets, allowed=()):
    """Scan, after blanking each (field, value) the run may show: a once-shown secret in the
    result field that documents it."""
    cleaned = {}
    for channel, text in channels.items():
        for field, value in allowed:
            for shown in ('"%s": "%s"' % (field, value), '"%s":"%s"' % (field, value)):
                text = text.replace(shown, '"%s": "<allowed once-shown secret>"' % field)
        cleaned[channel] = text
    hits = scan(name, cleaned, secrets)
    table.add(name, cleaned, secrets, hits)
    return hits


@pytest.fixture(scope="module")
def module_runs(sandbox, accounts, tmp_path_factory):
    """One ansible-playbook run: every module succeeding, then in check mode, then failing."""
    tmp = tmp_path_factory.mktemp("modules")
    modes = {
        "succeed": (module_tasks(sandbox, accounts, "ok"), False),
        "check": (check_tasks(sandbox, accounts), True),
        "fail": (failure_tasks(sandbox, accounts), False),
    }
    queue_faults = {"name": "queue faults", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [{
        "name": "A 500 that echoes the request, for every write of the failure play",
        "ansible.builtin.uri": {"url": sandbox.endpoints["control"] + "/faults", "method": "POST",
                                "body_format": "json", "body": "{{ item }}"},
        # The bodies hold the secrets the echo stands for: the test's own task must not print them.
        "loop": faults(accounts), "no_log": True}]}
    plays = [module_play("succeed", modes["succeed"][0], tmp / "succeed.json"),
             module_play("check mode", modes["check"][0], tmp / "check.json", check=True),
             queue_faults,
             module_play("fail", modes["fail"][0], tmp / "fail.json")]
    (tmp / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    extra = dict(accounts.vars(), bad_token="sbp_" + secrets.token_hex(20), bad_smtp2go_key="api-" + alnum(32))
    (tmp / "vars.json").write_text(json.dumps(extra))
    accounts.bad_token, accounts.bad_smtp2go_key = extra["bad_token"], extra["bad_smtp2go_key"]
    first_seq = (sandbox.journal() or [{"seq": 0}])[-1]["seq"]
    proc, log = run_playbook_file(str(tmp / "play.yml"), ["-i", "localhost,", "-vvvv", "-e", "@%s" % (tmp / "vars.json")],
                                  timeout=900)
    results = {mode: json.loads((tmp / (mode + ".json")).read_text()) if (tmp / (mode + ".json")).exists() else {}
               for mode in modes}
    return {"proc": proc, "log": log, "results": results, "first_seq": first_seq,
            "modes": {mode: tasks for mode, (tasks, _check) in modes.items()}}


def once_shown(results):
    return [(field, results[name][field]) for name, field in ONCE_SHOWN.items()
            if name in results and isinstance(results[name].get(field), str)]


@pytest.mark.parametrize("mode, play", [("succeed", "succeed"), ("check", "check mode"), ("fail", "fail")])
def test_modules(sandbox, accounts, module_runs, table, mode, play):
    proc, results = module_runs["proc"], module_runs["results"][mode]
    allowed = once_shown(results)
    secrets_ = accounts.secrets() + [
        Secret("bad access_token", accounts.bad_token), Secret("bad smtp2go api_key", accounts.bad_smtp2go_key)] + [
        Secret("once-shown %s" % field, value) for field, value in once_shown(module_runs["results"]["succeed"])]
    channels = {"stdout": sections(proc.stdout).get(play, ""), "stderr": proc.stderr,
                "log": sections(module_runs["log"]).get(play, ""), "results": json.dumps(results, ensure_ascii=False)}
    hits = scan_run(table, "modules, %s" % play, channels, secrets_, allowed)
    assert not hits, "\n".join(map(str, hits))
    assert set(results) == set(module_runs["modes"][mode]), proc.stdout[-3000:]
    failed = {name: result.get("msg") for name, result in results.items() if result.get("failed")}
    if mode != "fail":
        assert not failed, failed
        return
    # Every failure happened, and each echo came back (masked) in the message the user sees.
    assert set(failed) == set(results), set(results) - set(failed)
    for name in ECHOED:
        assert MASK in json.dumps(results[name]), (name, failed[name])
    # Issue 12: the invite's Auth error echoed the service-role key it had fetched, raw and as its
    # first 24 characters; the echo now comes back masked (the scan above found neither form).
    invite = json.dumps(results["supabase_email_test"])
    assert MASK in results["supabase_email_test"]["delivery"]["error"], invite
    assert accounts.secret_key[:24] not in invite and accounts.secret_key[:len("sb_secret_") + 8] not in invite
    assert "535" in failed["smtp_check_refused_login"] and "550" in failed["smtp_check_unverified_sender"], failed
    assert "401" in failed["supabase_smtp_bad_token"] and "401" in failed["smtp2go_user_bad_key"], failed
    echoed = [entry for entry in sandbox.journal() if entry["seq"] > module_runs["first_seq"] and entry["fault"]]
    assert {entry["service"] for entry in echoed} >= {"supabase_api", "supabase_auth", "smtp2go_api", "sendgrid_api",
                                                      "resend_api", "mailgun_api"}, echoed


# --- the playbooks -------------------------------------------------------------------------------


class Playbooks:
    """One inventory for setup-mail.yml and teardown-mail.yml: a project per registered provider,
    and projects that fail their own way (a 500 echoing the Supabase PATCH, a refused SMTP login,
    an unverified sender, a bad access token). Host variables carry what differs."""

    def __init__(self, sandbox, tmp_path):
        self.sandbox = sandbox
        self.token = None
        self.refs = {}
        self.secret_values = []
        self.mailbox_password = special("Mb-", 14)
        sandbox.add_mailbox(SENDER, self.mailbox_password)
        relay = sandbox_probe_vars(sandbox)["mail_probe_connect_to"]
        mailbox = {"465": "127.0.0.1:%d" % sandbox.endpoints["mailbox_smtp_implicit_tls_port"],
                   "587": "127.0.0.1:%d" % sandbox.endpoints["mailbox_smtp_starttls_port"]}
        self.smtp2go_key = sandbox.add_smtp2go_account(api_key="api-" + alnum(32))
        sandbox.set_smtp2go_auto_verify(0, api_key=self.smtp2go_key)
        self.unverified_key = sandbox.add_smtp2go_account(api_key="api-" + alnum(32))
        self.sendgrid_key = sandbox.control("POST", "/sendgrid/accounts", {})["api_key"]
        sandbox.control("POST", "/sendgrid/auto-verify", {"api_key": self.sendgrid_key, "after_seconds": 0})
        self.resend_key = sandbox.control("POST", "/resend/accounts", {})["api_key"]
        sandbox.control("POST", "/resend/accounts/settings", {"api_key": self.resend_key, "auto_publish_dns": True})
        resend_domain = "r%s.karto.test" % secrets.token_hex(4)
        self.mailgun_key = sandbox.control("POST", "/mailgun/accounts", {})["api_key"]
        mailgun_domain = "mg-%s.karto.test" % secrets.token_hex(4)
        sandbox.control("POST", "/mailgun/domains", {"api_key": self.mailgun_key, "name": mailgun_domain, "state": "active"})
        self.bad_token = "sbp_" + secrets.token_hex(20)
        smtp2go = {"mail_provider": "smtp2go", "smtp2go_api_url": sandbox.url("smtp2go_api"),
                   "smtp2go_api_key": self.smtp2go_key, "mail_probe_connect_to": relay}
        by_host = {
            "smtp2go": smtp2go,
            "sendgrid": {"mail_provider": "sendgrid", "sendgrid_api_url": sandbox.url("sendgrid_api"),
                         "sendgrid_api_key": self.sendgrid_key, "sendgrid_sender_address": "1 Example Street",
                         "sendgrid_sender_city": "Moscow", "sendgrid_sender_country": "Russia",
                         "mail_probe_connect_to": relay},
            "resend": {"mail_provider": "resend", "resend_api_url": sandbox.url("resend_api"),
                       "resend_api_key": self.resend_key, "mail_sender_email": "noreply@" + resend_domain,
                       "mail_probe_connect_to": relay},
            "mailgun": {"mail_provider": "mailgun", "mailgun_api_url": sandbox.url("mailgun_api"),
                        "mailgun_api_key": self.mailgun_key, "mailgun_domain": mailgun_domain,
                        "mail_probe_connect_to": relay},
            "mailbox": {"mail_provider": "mailbox", "mailbox_password": self.mailbox_password,
                        "mail_probe_connect_to": mailbox},
            # A proxy in front of the Management API answers the PATCH (password inside) with a 500 echoing it.
            "echo_500": smtp2go,
            "refused_login": {"mail_provider": "mailbox", "mailbox_password": special("Wrong-", 10),
                              "mail_probe_connect_to": mailbox},
            "unverified_sender": dict(smtp2go, smtp2go_api_key=self.unverified_key),
            "bad_token": {"mail_provider": "mailbox", "mailbox_password": self.mailbox_password,
                          "mail_probe_connect_to": mailbox, "supabase_access_token": self.bad_token},
        }
        hosts = {}
        for host, values in by_host.items():
            ref, self.token = sandbox.add_supabase_project(token=self.token)
            self.refs[host] = ref
            hosts[host] = dict({"supabase_project_ref": ref, "supabase_access_token": self.token,
                                "mail_sender_email": SENDER, "mail_smtp_username": "karto-%s" % ref[:8]}, **values)
            if values["mail_provider"] != "smtp2go":
                del hosts[host]["mail_smtp_username"]
        self.wrong_mailbox_password = by_host["refused_login"]["mailbox_password"]
        self.provider_of = {host: values["mail_provider"] for host, values in by_host.items()}
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"supabase_projects": {"hosts": hosts}}))
        self.vars_file = tmp_path / "vars.yml"
        probe = sandbox_probe_vars(sandbox)
        del probe["mail_probe_connect_to"]
        self.vars_file.write_text(yaml.safe_dump(dict({
            "mail_sender_name": "KARTO",
            "mail_test_recipient": "karto.help+%s@ro.ru" % secrets.token_hex(4),
            "mail_max_frequency": 1,
            "mail_secrets_dir": str(tmp_path / "secrets"),
            "supabase_api_url": sandbox.url("supabase_api"),
            "supabase_auth_url": sandbox.url("supabase_auth"),
        }, **probe)))

    def run(self, playbook, *args):
        return run_playbook_file(playbook, ["-i", str(self.inventory), "-e", "@" + str(self.vars_file), "-vvvv",
                                            "--diff", *args], env={"ANSIBLE_FORKS": "9"}, timeout=900)

    def given_secrets(self):
        return [
            Secret("supabase access_token", self.token), Secret("bad access_token", self.bad_token),
            Secret("smtp2go api_key", self.smtp2go_key), Secret("smtp2go api_key (unverified)", self.unverified_key),
            Secret("sendgrid api_key", self.sendgrid_key), Secret("resend api_key", self.resend_key),
            Secret("mailgun api_key", self.mailgun_key, basic_user="api"),
            Secret("mailbox password", self.mailbox_password, smtp_user=SENDER),
            Secret("wrong mailbox password", self.wrong_mailbox_password, smtp_user=SENDER),
        ]

    def issued_secrets(self):
        """Every credential the run had the providers make (SMTP passwords, keys) and the projects'
        secret keys, read from the emulators: none of them may show either."""
        found = []
        for key in (self.smtp2go_key, self.unverified_key):
            for user in self.sandbox.smtp2go_account(key)["users"]:
                found.append(Secret("smtp2go password of %s" % user["username"], user["email_password"],
                                    smtp_user=user["username"]))
        sendgrid = self.sandbox.control("GET", "/sendgrid/accounts/%s" % self.sendgrid_key)
        found += [Secret("sendgrid key %s" % key["name"], key["api_key"], smtp_user="apikey")
                  for key in sendgrid["keys"] if key["api_key"] != self.sendgrid_key]
        resend = self.sandbox.control("GET", "/resend/accounts/%s" % self.resend_key)
        found += [Secret("resend key %s" % key["name"], key["token"], smtp_user="resend")
                  for key in resend["keys"] if key["token"] != self.resend_key]
        mailgun = self.sandbox.control("GET", "/mailgun/accounts/%s" % self.mailgun_key)
        found += [Secret("mailgun password of %s" % cred["login"], cred["password"], smtp_user=cred["login"])
                  for domain in mailgun["domains"] for cred in domain["credentials"] if cred["password"]]
        for host, ref in self.refs.items():
            keys = self.sandbox.project_api_keys(ref)
            found += [Secret("%s service_role key" % host, keys["service_role"]),
                      Secret("%s secret key" % host, keys["secret"])]
        return found


@pytest.fixture(scope="module")
def playbooks(sandbox, tmp_path_factory):
    books = Playbooks(sandbox, tmp_path_factory.mktemp("playbooks"))
    echo = sandbox.inject_fault(service="supabase_api", action="status", status=500, method="PATCH",
                                path_contains=books.refs["echo_500"], echo_request=True, times=-1,
                                body=proxy_echo(books.token))
    setup, setup_log = books.run("playbooks/setup-mail.yml")
    sandbox.control("DELETE", "/faults/%s" % echo)
    # In check mode: what it would change shows in the diff, and check mode is the one a reader runs first.
    teardown, teardown_log = books.run("playbooks/teardown-mail.yml", "--check")
    return books, {"setup-mail.yml": (setup, setup_log), "teardown-mail.yml --check": (teardown, teardown_log)}


def recap(stdout):
    """{host: failed count} from the PLAY RECAP."""
    tail = stdout.rsplit("PLAY RECAP", 1)[-1]
    return {line.split()[0]: int(line.split("failed=")[1].split()[0]) for line in tail.splitlines() if "failed=" in line}


def test_setup_runs_every_registered_provider(playbooks):
    books, _runs = playbooks
    assert {books.provider_of[host] for host in books.refs} >= set(_relay.registered_profiles())


@pytest.mark.parametrize("playbook", ["setup-mail.yml", "teardown-mail.yml --check"])
def test_playbooks(playbooks, table, playbook):
    books, runs = playbooks
    proc, log = runs[playbook]
    channels = {"stdout": proc.stdout, "stderr": proc.stderr, "log": log}
    hits = scan_run(table, playbook + " -vvvv --diff", channels, books.given_secrets() + books.issued_secrets())
    assert not hits, "\n".join(map(str, hits))
    failed = {host: count > 0 for host, count in recap(proc.stdout).items()}
    # The bad token fails both; the other failure modes are setup-mail.yml's own.
    expected_failures = {"bad_token"} | ({"echo_500", "refused_login", "unverified_sender"}
                                         if playbook == "setup-mail.yml" else set())
    assert {host for host, did in failed.items() if did} == expected_failures, proc.stdout[-5000:]
