"""Runs real `ansible-playbook` against the sandbox and hands back what it did.

Each test writes its tasks; `run_tasks` wraps them in a localhost play, registers every task's
result, dumps them to a JSON file at the end, and returns the process output, the parsed
results and the Ansible log file, so tests can assert on results and grep outputs for secrets.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import yaml

from tests.collection_path import REPO_ROOT, collections_dir

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# The action that hands a run_tasks play's registered results to the test.
ACTION_PLUGINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "action_plugins")


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    log: str
    results: dict = field(default_factory=dict)

    @property
    def all_output(self):
        return "\n".join([self.stdout, self.stderr, self.log])

    def __getitem__(self, name):
        return self.results[name]


def ansible_env(extra=None, log_path=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_dir(),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_HOST_KEY_CHECKING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCAL_TEMP": tempfile.gettempdir(),
    })
    if log_path:
        env["ANSIBLE_LOG_PATH"] = log_path
    env.update(extra or {})
    return env


@functools.lru_cache(maxsize=None)
def seeded_secrets():
    """The secrets every sandbox is seeded with (demo tokens, keys, the demo mailbox's password,
    the seeded projects' service-role and secret keys): no run of any test may print one."""
    from tests.sandbox import mailbox_server, mailgun_api, resend_api, seed, sendgrid_api, supabase_api
    found = [seed.DEMO_ACCESS_TOKEN, seed.DEMO_SMTP2GO_API_KEY, sendgrid_api.DEMO_SENDGRID_API_KEY,
             resend_api.DEMO_RESEND_API_KEY, mailgun_api.DEMO_MAILGUN_API_KEY, mailbox_server.DEMO_MAILBOX_PASSWORD]
    for ref in (seed.DEMO_PROJECT_REF, seed.DEMO_STAGING_PROJECT_REF):
        found += [key["api_key"] for key in supabase_api.project_api_keys(ref)
                  if key["name"] == "service_role" or key["type"] == "secret"]
    return tuple(found)


def assert_no_seeded_secret(playbook, *texts):
    """A cheap check on every run (raw and JSON-escaped forms only; test_secrets_scan.py does the rest)."""
    output = "\n".join(texts)
    for secret in seeded_secrets():
        for form in (secret, json.dumps(secret)[1:-1]):
            assert form not in output, "%s printed a seeded sandbox secret (%s...)" % (playbook, secret[:4])


def run_playbook_file(playbook, args=(), env=None, timeout=300, cwd=REPO_ROOT):
    """Run an existing playbook; returns (process, log text). Fails if the run printed a secret
    the sandbox is seeded with."""
    with tempfile.TemporaryDirectory(prefix="karto-run-") as tmp:
        log_path = os.path.join(tmp, "ansible.log")
        proc = subprocess.run(
            [ANSIBLE_PLAYBOOK, playbook, *args], cwd=cwd, env=ansible_env(env, log_path),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )
        log = open(log_path).read() if os.path.exists(log_path) else ""
    assert_no_seeded_secret(playbook, proc.stdout, proc.stderr, log)
    return proc, log


def run_tasks(tasks, check=False, diff=False, verbosity=0, extra_vars=None, env=None,
              module_defaults=None, timeout=300):
    """Run `tasks` (list of dicts; give each a `register`) in one localhost play."""
    with tempfile.TemporaryDirectory(prefix="karto-play-") as tmp:
        results_path = os.path.join(tmp, "results.json")
        registered = [task["register"] for task in tasks if "register" in task]
        dump = {
            "name": "Dump registered results for the test",
            # A controller-side action (tests/integration/action_plugins): no module process.
            "karto_test_write_results": {
                "dest": results_path,
                "content": "{{ {%s} | to_json }}" % ", ".join(
                    "'%s': %s | default(None)" % (name, name) for name in registered),
            },
            "check_mode": False,
            "diff": False,
            "changed_when": False,
        }
        play = {
            "name": "Test play",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": list(tasks) + [dump],
        }
        if module_defaults:
            play["module_defaults"] = module_defaults
        playbook_path = os.path.join(tmp, "play.yml")
        with open(playbook_path, "w") as handle:
            yaml.safe_dump([play], handle, sort_keys=False)
        args = ["-i", "localhost,"]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        if verbosity:
            args.append("-" + "v" * verbosity)
        if extra_vars:
            vars_path = os.path.join(tmp, "vars.json")
            with open(vars_path, "w") as handle:
                json.dump(extra_vars, handle)
            args += ["-e", "@" + vars_path]
        env = dict(env or {})
        env["ANSIBLE_ACTION_PLUGINS"] = ":".join(filter(None, [ACTION_PLUGINS, env.get("ANSIBLE_ACTION_PLUGINS")]))
        proc, log = run_playbook_file(playbook_path, args, env=env, timeout=timeout)
        results = {}
        if os.path.exists(results_path):
            with open(results_path) as handle:
                results = json.load(handle)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, log, results)
