"""Benchmark: what setup-mail.yml costs on a first run and on a no-op rerun.

    .venv/bin/python -m benchmarks.noop_run [--projects N]

Starts a sandbox, runs playbooks/setup-mail.yml twice for N emulated projects, and prints the
wall time of each run and the provider API calls per endpoint, so "a no-op run makes one read
per object" is measured, not assumed. Also times the import of each module's code (the part of
module start-up this collection controls).
"""

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scripts.demo import sandbox_probe_vars
from tests.collection_path import REPO_ROOT, collections_dir
from tests.integration.playbook import run_playbook_file
from tests.sandbox.fixture import running_sandbox


def make_setup(sandbox, workdir, projects):
    api_key = sandbox.add_smtp2go_account()
    sandbox.set_smtp2go_auto_verify(0, api_key=api_key)
    token, hosts = None, {}
    for index in range(projects):
        ref, token = sandbox.add_supabase_project(token=token)
        hosts["project%d" % index] = {"supabase_project_ref": ref, "mail_smtp_username": "bench-%s" % ref[:10]}
    inventory = workdir / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"supabase_projects": {"hosts": hosts}}))
    variables = workdir / "vars.yml"
    variables.write_text(yaml.safe_dump({
        "mail_sender_email": "karto.help@ro.ru", "mail_sender_name": "KARTO", "mail_max_frequency": 1,
        "mail_secrets_dir": str(workdir / "secrets"),
        "supabase_api_url": sandbox.url("supabase_api"), "supabase_auth_url": sandbox.url("supabase_auth"),
        "supabase_access_token": token, "smtp2go_api_url": sandbox.url("smtp2go_api"), "smtp2go_api_key": api_key,
        # The preflight's DNS and relay are the sandbox's, as in the demo.
        **sandbox_probe_vars(sandbox),
    }))
    return ["-i", str(inventory), "-e", "@" + str(variables)]


def timed_run(sandbox, args):
    since = max((entry["seq"] for entry in sandbox.journal()), default=0)
    started = time.monotonic()
    proc, _log = run_playbook_file("playbooks/setup-mail.yml", args)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("setup-mail.yml failed:\n" + proc.stdout[-3000:])
    calls = collections.Counter(
        "%s %s %s" % (entry["service"], entry["method"], entry["path"].split("/v1/projects/")[-1].split("/", 1)[-1])
        for entry in sandbox.journal() if entry["seq"] > since and entry["service"] != "smtp_relay")
    return elapsed, calls


def module_import_seconds(module, repeats=5):
    code = "import ansible_collections.karto.supabase_mail.plugins.modules.%s" % module
    env = dict(os.environ, PYTHONPATH=collections_dir())
    times = []
    for _attempt in range(repeats):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karto-bench-") as tmp:
        (Path(tmp) / "sandbox").mkdir()
        with running_sandbox(Path(tmp) / "sandbox") as sandbox:
            args = make_setup(sandbox, Path(tmp), options.projects)
            for label in ("first run", "no-op rerun"):
                elapsed, calls = timed_run(sandbox, args)
                print("%s, %d projects: %.1f s, %d API calls" % (label, options.projects, elapsed, sum(calls.values())))
                for call, count in sorted(calls.items()):
                    print("  %3d  %s" % (count, call))
    print("module code import (median of 5, includes interpreter start):")
    for module in sorted(p.stem for p in (Path(REPO_ROOT) / "plugins" / "modules").glob("*.py")):
        print("  %.3f s  %s" % (module_import_seconds(module), module))
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import ansible.module_utils.basic"], check=True)
    print("  %.3f s  (reference: interpreter + ansible.module_utils.basic alone)" % (time.monotonic() - started))


if __name__ == "__main__":
    main()
