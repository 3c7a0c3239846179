"""`make bench`: what the collection costs, measured against the sandbox.

    .venv/bin/python -m benchmarks.run [--size tiny|full] [--parts abcde] [--output FILE]

(a) per-task cost of each module's read-only no-op call, divided by `ansible.builtin.ping` in the
    same playbook (each call paired with the ping just before it, median over interleaved rounds;
    timed by benchmarks/callback_plugins/bench_timer.py);
(b) API and DNS requests of a no-op `setup-mail.yml`, per managed object (from the sandbox journal);
(c) wall time of `setup-mail.yml` for 1, 10 and 50 projects (forks 10), first run and no-op, as ratios;
(d) `smtp_check` over 4 ports with one black-holed, against its timeout;
(e) module import time against `ansible.module_utils.basic` alone, and which imports cost.

`--size tiny` (run by tests/integration/test_benchmarks.py) does each part once, on 2 projects;
`--size full` writes benchmarks/results/latest.md. The table is printed and written.
"""

import argparse
import collections
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from scripts.demo import sandbox_probe_vars
from tests.collection_path import REPO_ROOT, collections_dir
from tests.integration.playbook import run_playbook_file
from tests.integration.test_module_examples import emulator_settings
from tests.sandbox.fixture import running_sandbox

BENCH_DIR = Path(__file__).resolve().parent
SENDER = "karto.help@ro.ru"
FORKS = 10
SIZES = {
    # rounds of (a), project counts of (c), import repeats of (e)
    # tiny: 2 projects, so the no-op shows the account- and domain-level reads made once, not per project
    # and only the modules of the default (SMTP2GO) path in (a)
    "tiny": {"rounds": 1, "projects": [2], "import_repeats": 1, "probe_timeout": 6,
             "modules": ["supabase_smtp", "smtp2go_user", "smtp2go_sender", "sender_domain_check", "smtp_check"]},
    # One pair's ratio spreads over about +-0.2 on this VM; 25 rounds put the median's error near
    # 0.05 (9 rounds: about 0.08, and two quiet runs of one tree disagreed on the 1.25 verdict).
    "full": {"rounds": 25, "projects": [1, 10, 50], "import_repeats": 5, "probe_timeout": 10},
}
# A journal entry that changes nothing: HTTP reads, SMTP2GO's POST .../view reads, DNS queries.
READ_METHODS = ("GET", "HEAD")
READ_PATH_ENDINGS = ("/view", "/permissions")


def is_read(entry):
    return entry["service"] == "dns" or entry["method"] in READ_METHODS or entry["path"].endswith(READ_PATH_ENDINGS)


def bench_env(timings_path):
    return {"ANSIBLE_CALLBACK_PLUGINS": str(BENCH_DIR / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timer", "KARTO_BENCH_TIMINGS": str(timings_path)}


def run_timed(playbook, args, workdir, label, env=None):
    """One ansible-playbook run with the timing callback; returns (wall seconds, task records)."""
    timings = Path(workdir) / ("timings-%s.json" % re.sub(r"\W+", "-", label))
    started = time.monotonic()
    proc, _log = run_playbook_file(str(playbook), list(args), env=dict(env or {}, **bench_env(timings)), timeout=1800)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed (%s):\n%s\n%s" % (playbook, label, proc.stdout[-4000:], proc.stderr[-2000:]))
    return elapsed, json.loads(timings.read_text()) if timings.exists() else []


def last_seq(sandbox):
    entries = sandbox.journal()
    return entries[-1]["seq"] if entries else 0


# ------------------------------------------------------------------------ (a) task cost / ping

def module_calls(sandbox, workdir):
    """The read-only no-op call of each module (the first round creates what it reads)."""
    relay_key, relay_user, relay_password = sandbox.add_smtp2go_relay_user(SENDER)
    ref, token = sandbox.add_supabase_project()
    probe = sandbox_probe_vars(sandbox)
    smtp2go = {"api_key": relay_key}
    calls = {
        "supabase_smtp": {"project_ref": ref, "access_token": token, "host": "mail.smtp2go.com", "port": 465,
                          "username": relay_user, "password": relay_password, "sender_email": SENDER,
                          "sender_name": "KARTO", "max_frequency": 60, "email_rate_limit": 100},
        "supabase_email_templates": {"project_ref": ref, "access_token": token,
                                     "templates": {"confirmation": {"subject": "Подтвердите регистрацию"}}},
        "smtp2go_user": dict(smtp2go, username=relay_user, password=relay_password),
        "smtp2go_sender": dict(smtp2go, email_address=SENDER),
        "sendgrid_sender": {"api_key": "{{ sendgrid_api_key }}", "from_email": SENDER, "from_name": "KARTO",
                            "address": "1 Example Street", "city": "Moscow", "country": "Russia"},
        "sendgrid_api_key": {"api_key": "{{ sendgrid_api_key }}", "name": "bench-%s" % ref},
        "resend_domain": {"api_key": "{{ resend_api_key }}", "name": "mail.karto.test"},
        "resend_api_key": {"api_key": "{{ resend_api_key }}", "name": "bench-%s" % ref, "permission": "sending_access"},
        "mailgun_domain_info": {"api_key": "{{ mailgun_api_key }}", "domain": "mg.karto.test"},
        "mailgun_smtp_credential": {"api_key": "{{ mailgun_api_key }}", "domain": "mg.karto.test",
                                    "login": "bench-%s@mg.karto.test" % ref[:8], "password": "Bench-%s" % ref[:20]},
        "sender_domain_check": {"email": SENDER, "relay": "SMTP2GO", "relay_identity": {"spf_includes": ["spf.smtp2go.com"]},
                                "nameservers": probe["mail_dns_nameservers"], "dns_port": probe["mail_dns_port"]},
        "smtp_check": {"host": "mail.smtp2go.com", "ports": [465], "username": relay_user, "password": relay_password,
                       "sender": SENDER, "ca_path": probe["mail_probe_ca_path"], "connect_to": probe["mail_probe_connect_to"]},
    }
    env, extra_vars = emulator_settings(sandbox)
    env["SUPABASE_API_URL"] = sandbox.url("supabase_api")
    return calls, env, extra_vars


# Modules part (a) leaves out, and why; every other module must have a no-op call above.
NO_READ_ONLY_NO_OP = {"supabase_email_test": "sends a mail on every call"}


def measure_task_cost(sandbox, workdir, rounds, modules=None):
    """Each module's call right after a ping of its own, in interleaved rounds. A module's ratio is the
    median over rounds of (its time / the ping just before it): a pair runs within a second, so a slow
    spell of the machine (a VM neighbour, a cron job) moves both sides of a pair, not one side of a median."""
    calls, env, extra_vars = module_calls(sandbox, workdir)
    every_module = {name[:-3] for name in os.listdir(Path(REPO_ROOT) / "plugins" / "modules") if name.endswith(".py")}
    uncovered = every_module - set(calls) - set(NO_READ_ONLY_NO_OP)
    if uncovered:
        raise SystemExit("per-task cost: no read-only no-op call for %s in module_calls()" % ", ".join(sorted(uncovered)))
    calls = {module: args for module, args in calls.items() if modules is None or module in modules}
    tasks = []
    for round_number in range(rounds + 1):  # round 0 creates; its times are not counted
        for module, args in calls.items():
            tasks.append({"name": "r%d ping-before %s" % (round_number, module), "ansible.builtin.ping": {}})
            tasks.append({"name": "r%d %s" % (round_number, module), "karto.supabase_mail." + module: args,
                          "no_log": True})
    play = [{"name": "Per-task cost", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable}, "tasks": tasks}]
    playbook = Path(workdir) / "task-cost.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    vars_file = Path(workdir) / "task-cost-vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    since = last_seq(sandbox)
    _wall, records = run_timed(playbook, ["-i", "localhost,", "-e", "@%s" % vars_file], workdir, "task-cost", env)
    durations, pings = collections.defaultdict(list), {}
    for record in records:
        round_number, name = record["task"].split(" ", 1)
        if round_number == "r0":
            continue
        if record["status"] not in ("ok",):
            raise SystemExit("per-task cost: %s was %s, not an unchanged read" % (record["task"], record["status"]))
        seconds = record["end"] - record["start"]
        if name.startswith("ping-before "):
            pings[(round_number, name.split(" ", 1)[1])] = seconds
        else:
            durations[name].append((seconds, seconds / pings[(round_number, name)]))
    ping = statistics.median(pings.values())
    # (module, median seconds, median paired ratio, lowest and highest paired ratio)
    rows = [(module, statistics.median(s for s, _r in pairs), statistics.median(r for _s, r in pairs),
             min(r for _s, r in pairs), max(r for _s, r in pairs)) for module, pairs in durations.items()]
    # Requests of the counted rounds: reads only, or the no-op was not one.
    round_one = [r["start"] for r in records if r["task"].startswith("r1 ")]
    later_writes = ["%s %s %s" % (e["service"], e["method"], e["path"]) for e in sandbox.journal()
                    if e["seq"] > since and not is_read(e) and e["service"] != "smtp_relay"
                    and round_one and e["time"] >= time.time() - (time.monotonic() - min(round_one))]
    return ping, rows, later_writes


# ------------------------------------------------------------------------ (b), (c) setup-mail.yml

def make_projects(sandbox, workdir, projects):
    api_key = sandbox.add_smtp2go_account()
    sandbox.set_smtp2go_auto_verify(0, api_key=api_key)
    token, hosts = None, {}
    for index in range(projects):
        ref, token = sandbox.add_supabase_project(token=token)
        hosts["project%02d" % index] = {"supabase_project_ref": ref, "mail_smtp_username": "bench-%s" % ref[:10]}
    workdir = Path(workdir)
    inventory = workdir / ("hosts-%d.yml" % projects)
    inventory.write_text(yaml.safe_dump({"supabase_projects": {"hosts": hosts}}))
    variables = workdir / ("vars-%d.yml" % projects)
    variables.write_text(yaml.safe_dump({
        "mail_sender_email": SENDER, "mail_sender_name": "KARTO", "mail_max_frequency": 1,
        "mail_secrets_dir": str(workdir / ("secrets-%d" % projects)),
        "supabase_api_url": sandbox.url("supabase_api"), "supabase_auth_url": sandbox.url("supabase_auth"),
        "supabase_access_token": token, "smtp2go_api_url": sandbox.url("smtp2go_api"), "smtp2go_api_key": api_key,
        **sandbox_probe_vars(sandbox),
    }))
    return ["-i", str(inventory), "-e", "@" + str(variables), "--forks", str(FORKS)]


def requests_since(sandbox, since):
    return [e for e in sandbox.journal() if e["seq"] > since]


def measure_setup_mail(sandbox, workdir, projects):
    """First run and no-op run of `projects` projects: wall times, the no-op's requests and task times."""
    args = make_projects(sandbox, workdir, projects)
    inbox_before = len(sandbox.inbox())
    first_wall, _records = run_timed("playbooks/setup-mail.yml", args, workdir, "first-%d" % projects)
    first_mails = len(sandbox.inbox()) - inbox_before
    since, inbox_before = last_seq(sandbox), len(sandbox.inbox())
    noop_wall, noop_records = run_timed("playbooks/setup-mail.yml", args, workdir, "noop-%d" % projects)
    return {"projects": projects, "first": first_wall, "noop": noop_wall, "first_mails": first_mails,
            "noop_requests": requests_since(sandbox, since), "noop_mails": len(sandbox.inbox()) - inbox_before,
            "noop_changed": [r["task"] for r in noop_records if r["status"] == "changed"],
            "noop_records": noop_records}


def per_object(run):
    """The no-op's requests grouped as objects: which object each request reads, and how often."""
    objects = collections.Counter()
    writes = []
    relay_probes = 0
    for entry in run["noop_requests"]:
        if entry["service"] == "smtp_relay":
            relay_probes += entry["path"].upper().startswith("AUTH")
            continue
        if not is_read(entry):
            writes.append("%s %s %s" % (entry["service"], entry["method"], entry["path"]))
            continue
        body = entry.get("json") or {}
        if entry["service"] == "dns":
            key = "dns %s %s" % (entry["method"], entry["path"])
        else:
            # One object per path and its identifying field (SMTP2GO names the object in the body).
            ident = [body.get(k) for k in ("username", "email_address", "domain") if isinstance(body, dict) and body.get(k)]
            key = "%s %s %s %s" % (entry["service"], entry["method"], entry["path"], ident[0] if ident else "")
        objects[key] += 1
    return objects, writes, relay_probes


# ------------------------------------------------------------------------ (d) smtp_check, one port black-holed

class BlackHole:
    """A TCP port that accepts connections and never says a word (a firewall that drops is slower to
    tell apart only in the connect stage; the greeting wait is the longer of the two)."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _addr = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.server.close()
        for conn in self.held:
            conn.close()


def measure_smtp_check(sandbox, workdir, timeout):
    key, user, password = sandbox.add_smtp2go_relay_user(SENDER)
    hole = BlackHole()
    try:
        probe = sandbox_probe_vars(sandbox)
        connect_to = dict(probe["mail_probe_connect_to"],
                          **{"2525": probe["mail_probe_connect_to"]["587"], "25": "127.0.0.1:%d" % hole.port})
        play = [{"name": "smtp_check, one port black-holed", "hosts": "localhost", "connection": "local",
                 "gather_facts": False, "vars": {"ansible_python_interpreter": sys.executable},
                 "tasks": [{"name": "probe", "karto.supabase_mail.smtp_check": {
                     "host": "mail.smtp2go.com", "ports": [465, 587, 2525, 25], "username": user, "password": password,
                     "sender": SENDER, "timeout": timeout, "ca_path": probe["mail_probe_ca_path"],
                     "connect_to": connect_to, "fail_on_error": False}, "register": "probe"},
                     {"name": "save", "ansible.builtin.copy": {
                         "content": "{{ probe | to_json }}", "dest": str(Path(workdir) / "probe.json"), "mode": "0600"}}]}]
        playbook = Path(workdir) / "smtp-check.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        _wall, records = run_timed(playbook, ["-i", "localhost,"], workdir, "smtp-check")
    finally:
        hole.close()
    result = json.loads((Path(workdir) / "probe.json").read_text())
    task = [r for r in records if r["task"] == "probe"][0]
    ports = {r["port"]: r.get("error_class") or "ok" for r in result["results"]}
    return {"timeout": timeout, "elapsed": result["elapsed"], "task": task["end"] - task["start"], "ports": ports}


# ------------------------------------------------------------------------ (e) imports

def package_of(name):
    """`requests.adapters` -> `requests`; Ansible's own module_utils count one by one."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[0] == "ansible" or parts[0] == "ansible_collections" else parts[0]


def import_profile(module, repeats):
    """Median seconds to import the module after ansible.module_utils.basic, and the costliest imports
    it adds (from python -X importtime: top-level imports not already done by basic)."""
    env = dict(os.environ, PYTHONPATH=collections_dir())
    code = ("import time, ansible.module_utils.basic; t = time.perf_counter(); import %s; "
            "print(time.perf_counter() - t)") % module
    seconds, added = [], collections.Counter()
    for _attempt in range(repeats):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True,
                              text=True, check=True)
        seconds.append(float(proc.stdout.split()[-1]))
        # Each package is imported once, so a line's cumulative time is what that import cost here
        # (children included, what basic already imported excluded). Lines print children first, so
        # a line's parent is the next line one level up; a package's cost is the sum of its imports
        # made from outside it.
        after_basic, pending, lines = False, {}, []
        for line in proc.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
            if not match:
                continue
            depth, name = (len(match.group(2)) - 1) // 2, match.group(3)
            for child in pending.pop(depth + 1, []):
                child["parent"] = name
            entry = {"name": name, "cumulative": int(match.group(1)), "parent": None, "counted": after_basic}
            pending.setdefault(depth, []).append(entry)
            lines.append(entry)
            if name == "ansible.module_utils.basic" and depth == 0:
                after_basic = True
        for entry in lines:
            package = package_of(entry["name"])
            if entry["counted"] and not package.startswith("ansible_collections.") and (
                    entry["parent"] is None or package_of(entry["parent"]) != package):
                added[package] += entry["cumulative"] / repeats
    heavy = [(name, micro / 1e6) for name, micro in added.most_common(3) if micro >= 5000]
    return statistics.median(seconds), heavy


def basic_import_seconds(repeats):
    code = "import time; t = time.perf_counter(); import ansible.module_utils.basic; print(time.perf_counter() - t)"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _repeat in range(repeats)]
    return statistics.median(float(proc.stdout) for proc in runs)


# ------------------------------------------------------------------------ report

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ansible_version = subprocess.run([sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return ("nproc %d, %s, Python %s, ansible-core %s, load average %.1f at start"
            % (os.cpu_count(), cpu, platform.python_version(), ansible_version, load))


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _column in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--output", help="file for the table (default: benchmarks/results/latest.md for full, "
                                         "tests/output/bench-tiny.md for tiny)")
    parser.add_argument("--json", help="also write the measured values as JSON here")
    parser.add_argument("--parts", default="abcde",
                        help="which parts to measure, e.g. ae for the per-task cost and imports only (default abcde)")
    options = parser.parse_args(argv)
    parts = set(options.parts)
    if not parts or parts - set("abcde"):
        parser.error("--parts takes letters of abcde, e.g. --parts ae")
    size = SIZES[options.size]
    # A partial run (--parts) does not overwrite the full table.
    suffix = "" if parts == set("abcde") else "-" + "".join(sorted(parts))
    output = Path(options.output or (BENCH_DIR / "results" / ("latest%s.md" % suffix) if options.size == "full"
                                     else Path(REPO_ROOT) / "tests" / "output" / ("bench-tiny%s.md" % suffix)))
    started = time.monotonic()
    report = ["# `make bench` (size %s)" % options.size, "", "Machine: " + machine(), ""]
    values = {}
    with tempfile.TemporaryDirectory(prefix="karto-bench-") as tmp:
        (Path(tmp) / "sandbox").mkdir()
        with running_sandbox(Path(tmp) / "sandbox") as sandbox:
            if "a" in parts:
                ping, cost_rows, cost_writes = measure_task_cost(sandbox, tmp, size["rounds"], size.get("modules"))
                values["task_cost"] = {"ping": ping, "modules": {row[0]: row[2] for row in cost_rows},
                                       "writes": len(cost_writes)}
                report += ["## (a) Per-task cost of a read-only no-op call, against `ansible.builtin.ping`", "",
                           "%d interleaved rounds; in each, every module's call right after a ping of its own. "
                           "Ratio: the median over rounds of (the call / the ping just before it); the range is the "
                           "lowest and highest round. Times from the task's start on the host to its result "
                           "(benchmarks/callback_plugins/bench_timer.py). ping: %.3f s (median). Writes in the timed "
                           "rounds: %s." % (size["rounds"], ping, ", ".join(cost_writes) or "0"), "",
                           table(["module", "seconds", "ratio to ping", "range over rounds", "<= 1.25"],
                                 [(m, "%.3f" % s, "%.2f" % r, "%.2f-%.2f" % (low, high), "yes" if r <= 1.25 else "**no**")
                                  for m, s, r, low, high in sorted(cost_rows, key=lambda row: -row[2])]), ""]
            if parts & set("bc"):
                runs = [measure_setup_mail(sandbox, tmp, projects) for projects in size["projects"]]
                largest = runs[-1]
                objects, writes, relay_probes = per_object(largest)
                reads_per_object = max(objects.values()) if objects else 0
                values["noop"] = {"projects": largest["projects"], "objects": len(objects), "reads": sum(objects.values()),
                                  "max_reads_per_object": reads_per_object, "writes": len(writes),
                                  "mails": largest["noop_mails"], "changed": largest["noop_changed"],
                                  "relay_probes": relay_probes}
                kind_of = {key: key if key.startswith("dns") else re.sub(
                    r"/projects/[a-z]{20}/", "/projects/{ref}/", key.rsplit(" ", 1)[0]) for key in objects}
                by_kind = collections.Counter(kind_of.values())
                report += ["## (b) Requests of a no-op `setup-mail.yml`, %d projects" % largest["projects"], "",
                           "%d objects read, %d reads (at most %d per object), %d writes, %d mails, %d changed tasks; "
                           "%d relay logins (the preflight's SMTP probe, one per project)."
                           % (len(objects), sum(objects.values()), reads_per_object, len(writes), largest["noop_mails"],
                              len(largest["noop_changed"]), relay_probes), "",
                           table(["request", "objects", "reads"],
                                 [(kind, count, sum(reads for key, reads in objects.items() if kind_of[key] == kind))
                                  for kind, count in sorted(by_kind.items())]), ""]
                base = runs[0]
                values["setup_mail"] = [{k: run[k] for k in ("projects", "first", "noop", "first_mails", "noop_mails")}
                                        for run in runs]
                report += ["## (c) Wall time of `setup-mail.yml`, forks %d" % FORKS, "",
                           table(["projects", "first run s", "no-op s", "first / %d-project first" % base["projects"],
                                  "no-op / %d-project no-op" % base["projects"], "no-op per project s"],
                                 [(run["projects"], "%.1f" % run["first"], "%.1f" % run["noop"],
                                   "%.2f" % (run["first"] / base["first"]), "%.2f" % (run["noop"] / base["noop"]),
                                   "%.2f" % (run["noop"] / run["projects"])) for run in runs]), ""]
                by_size = {run["projects"]: run for run in runs}
                if 10 in by_size and 50 in by_size:
                    ratio = by_size[50]["noop"] / by_size[10]["noop"]
                    values["noop_50_over_10"] = ratio
                    report += ["50-project no-op / 10-project no-op: **%.2f** (must be <= 5.5)." % ratio, ""]
                slowest = collections.defaultdict(float)
                for record in largest["noop_records"]:
                    slowest[record["task"]] += record["end"] - record["start"]
                report += ["Costliest tasks of the largest no-op (seconds summed over hosts): " + "; ".join(
                    "%s %.1f" % (name, sec) for name, sec in sorted(slowest.items(), key=lambda item: -item[1])[:6]) + ".", ""]
            if "d" in parts:
                check = measure_smtp_check(sandbox, tmp, timeout=size["probe_timeout"])
                values["smtp_check"] = check
                report += ["## (d) `smtp_check` over 4 ports, one black-holed", "",
                           "timeout %d s: the module's own elapsed %.2f s, the task %.2f s (%.2f x timeout); ports: %s."
                           % (check["timeout"], check["elapsed"], check["task"], check["task"] / check["timeout"],
                              ", ".join("%s %s" % item for item in sorted(check["ports"].items()))), ""]
    if "e" in parts:
        modules = sorted(p.stem for p in (Path(REPO_ROOT) / "plugins" / "modules").glob("*.py"))
        if options.size == "tiny":
            modules = ["smtp2go_user", "sender_domain_check"]
        basic = basic_import_seconds(size["import_repeats"])
        imports = []
        for module in modules:
            seconds, heavy = import_profile("ansible_collections.karto.supabase_mail.plugins.modules." + module,
                                            size["import_repeats"])
            imports.append((module, seconds, heavy))
        values["imports"] = {"basic": basic, "modules": {m: s for m, s, _h in imports}}
        report += ["## (e) Module import time on top of `ansible.module_utils.basic`", "",
                   "`ansible.module_utils.basic` alone: %.3f s (median of %d, fresh interpreter). "
                   "Added imports per package from `python -X importtime` (mean; importtime's own overhead inflates them)."
                   % (basic, size["import_repeats"]), "",
                   table(["module", "import after basic s", "/ basic", "costliest added imports"],
                         [(m, "%.3f" % s, "%.2f" % (s / basic), ", ".join("%s %.3f" % item for item in heavy) or "-")
                          for m, s, heavy in sorted(imports, key=lambda row: -row[1])]), ""]
    report += ["Total bench time: %.0f s." % (time.monotonic() - started)]
    text = "\n".join(report) + "\n"
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    if options.json:
        Path(options.json).write_text(json.dumps(values, indent=1, default=str))
    return values


if __name__ == "__main__":
    main()
