"""`make bench` at its tiny size, so the benchmark cannot rot, and the invariants it measures.

The script starts its own sandbox (as `make bench` does) and writes its table and values; the
assertions are on what it measured: a no-op run of 2 projects reads each object once (the SMTP2GO
sender and the From domain's DNS once for both), writes nothing and sends no mail.
"""

import json
import subprocess
import sys

from tests.collection_path import REPO_ROOT

PROJECTS = 2
# A no-op reads per project its Supabase auth config and its SMTP user; once per run the account's
# sender and the From domain's three TXT records (the domain, its SPF include, _dmarc).
READS_PER_PROJECT = 2
READS_PER_RUN = 1 + 3


def test_bench_tiny_prints_its_table_and_the_no_op_run_is_cheap(tmp_path):
    table, values = tmp_path / "bench.md", tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--size", "tiny", "--output", str(table),
                           "--json", str(values)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = table.read_text()
    assert text in proc.stdout
    for part in ("(a) Per-task cost", "(b) Requests of a no-op", "(c) Wall time", "(d) `smtp_check`", "(e) Module import"):
        assert part in text
    measured = json.loads(values.read_text())

    noop = measured["noop"]
    assert noop["projects"] == PROJECTS
    assert noop["max_reads_per_object"] == 1, text
    assert noop["reads"] == noop["objects"] == READS_PER_PROJECT * PROJECTS + READS_PER_RUN, text
    assert (noop["writes"], noop["mails"], noop["changed"]) == (0, 0, []), text
    # The preflight still probes each project's own SMTP login.
    assert noop["relay_probes"] == PROJECTS
    [run] = measured["setup_mail"]
    assert run["first_mails"] == PROJECTS and run["noop_mails"] == 0

    cost = measured["task_cost"]
    assert cost["writes"] == 0 and cost["ping"] > 0
    assert {"supabase_smtp", "smtp2go_user", "smtp2go_sender", "sender_domain_check"} <= set(cost["modules"])
    assert all(ratio > 0 for ratio in cost["modules"].values())

    # The black-holed port ends in a timeout class within the probe's own bound; the others work.
    probe = measured["smtp_check"]
    assert probe["ports"]["25"] in ("connect-timeout", "greeting-timeout"), probe
    assert all(probe["ports"][port] == "ok" for port in ("465", "587", "2525")), probe
    # (one second of slack for a loaded machine's scheduler; the full run reports the ratio)
    assert probe["elapsed"] <= probe["timeout"] + 1, probe

    imports = measured["imports"]
    assert imports["basic"] > 0 and all(seconds > 0 for seconds in imports["modules"].values())
