"""`make demo`: run playbooks/setup-mail.yml end to end against the local sandbox.

Starts the sandbox, runs the playbook for the two demo projects of the sandbox inventory
(SMTP2GO relay, From KARTO <karto.help@ro.ru>), shows the delivered mail and what the run
wrote, runs the playbook again to show that nothing changes, and stops the sandbox.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.sandbox.fixture import running_sandbox
from tests.sandbox.seed import DEMO_ACCESS_TOKEN, DEMO_SMTP2GO_API_KEY

REPO_ROOT = Path(__file__).resolve().parents[1]
# KARTO_DEMO_DIR lets a test run the demo in a folder of its own.
DEMO_DIR = Path(os.environ.get("KARTO_DEMO_DIR") or REPO_ROOT / "build" / "demo")
# Calls that change provider state; reads (GET, SMTP2GO view) and Auth's test mail are not writes.
WRITE_CALLS = {
    "supabase_api": lambda entry: entry["method"] in ("PATCH", "POST", "PUT", "DELETE"),
    "smtp2go_api": lambda entry: not entry["path"].endswith("/view") and entry["method"] != "GET",
    "dns": lambda entry: False,
}


def sandbox_probe_vars(sandbox):
    """Where the preflight finds the sandbox's DNS and relay (a real run uses real DNS and hosts)."""
    return {
        "mail_dns_nameservers": ["127.0.0.1"],
        "mail_dns_port": sandbox.endpoints["dns_port"],
        "mail_probe_ca_path": sandbox.ca_cert,
        "mail_probe_connect_to": {
            "465": "127.0.0.1:%d" % sandbox.endpoints["smtp_relay_implicit_tls_port"],
            "587": "127.0.0.1:%d" % sandbox.endpoints["smtp_relay_starttls_port"],
        },
    }


def banner(text):
    print("\n" + "=" * 78 + "\n" + text + "\n" + "=" * 78, flush=True)


def run_playbook(vars_file):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO_ROOT / "build" / "collections"))
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "playbooks/inventory/sandbox",
               "playbooks/setup-mail.yml", "-e", "@" + str(vars_file)]
    print("$ " + " ".join(command[1:]), flush=True)
    process = subprocess.run(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    print(process.stdout, flush=True)
    if process.returncode != 0:
        raise SystemExit("demo: setup-mail.yml failed (exit %d)" % process.returncode)
    return process.stdout


def writes_in(entries):
    return [e for e in entries if e["service"] in WRITE_CALLS and WRITE_CALLS[e["service"]](e)]


def show_journal(sandbox, since):
    entries = [e for e in sandbox.journal() if e["seq"] > since]
    writes = writes_in(entries)
    reads = [e for e in entries if e["service"] in WRITE_CALLS and e not in writes]
    print("Provider API calls this run: %d reads, %d writes" % (len(reads), len(writes)))
    for entry in writes:
        print("  write: %-13s %-6s %s -> %s" % (entry["service"], entry["method"], entry["path"], entry["status"]))
    return entries, writes


def show_inbox(sandbox, address):
    messages = sandbox.inbox(to=address)
    print("Sandbox inbox for %s: %d message(s)" % (address, len(messages)))
    for message in messages[-2:]:
        headers = message.get("headers", {})
        print("  ---")
        for name in ("From", "To", "Subject", "Date"):
            print("  %s: %s" % (name, headers.get(name)))
        print("  relayed via port %s (%s) as SMTP user %s" % (
            message.get("port"), message.get("tls"), message.get("auth_user")))


def main():
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    with running_sandbox(DEMO_DIR) as sandbox:
        sandbox.control("POST", "/smtp2go/auto-verify", {"api_key": DEMO_SMTP2GO_API_KEY, "after_seconds": 1})
        vars_file = DEMO_DIR / "sandbox-vars.yml"
        vars_file.write_text(yaml.safe_dump({
            "supabase_api_url": sandbox.url("supabase_api"),
            "supabase_auth_url": sandbox.url("supabase_auth"),
            "supabase_access_token": DEMO_ACCESS_TOKEN,
            "smtp2go_api_url": sandbox.url("smtp2go_api"),
            "smtp2go_api_key": DEMO_SMTP2GO_API_KEY,
            "mail_secrets_dir": str(DEMO_DIR / "secrets"),
        } | sandbox_probe_vars(sandbox)))
        os.chmod(vars_file, 0o600)

        banner("Run 1: provision SMTP2GO, apply to Supabase, prove delivery")
        started = time.monotonic()
        run_playbook(vars_file)
        print("took %.1fs" % (time.monotonic() - started))
        last_seq = max((e["seq"] for e in sandbox.journal()), default=0)
        show_journal(sandbox, 0)
        show_inbox(sandbox, "karto.help@ro.ru")

        banner("Run 2: the same again; nothing may change")
        started = time.monotonic()
        output = run_playbook(vars_file)
        print("took %.1fs" % (time.monotonic() - started))
        writes = show_journal(sandbox, last_seq)[1]
        recap_changed = [line for line in output.splitlines() if "changed=" in line and "changed=0" not in line]
        if writes or recap_changed:
            raise SystemExit("demo: the second run changed something: %s %s" % (writes, recap_changed))
        print("Second run: changed=0 on every project, 0 provider writes.")
        # mail_verify: on_change: the settings were proven by run 1, so run 2 spends no mail.
        show_inbox(sandbox, "karto.help@ro.ru")
        print("\nStored SMTP password file(s): %s" % ", ".join(
            sorted(p.name for p in (DEMO_DIR / "secrets").iterdir() if p.is_file())))


if __name__ == "__main__":
    main()
