"""`make demo` stays true: scripts/demo.py (what `make demo` runs) end to end in a folder of its
own, with the checks it makes itself (a second run changes nothing and writes nothing)."""

import subprocess
import sys

from tests.collection_path import REPO_ROOT
from tests.integration.playbook import ansible_env


def test_the_demo_runs_twice_and_the_second_run_changes_nothing(tmp_path):
    env = ansible_env({"KARTO_DEMO_DIR": str(tmp_path / "demo")})
    proc = subprocess.run([sys.executable, "-m", "scripts.demo"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Provider API calls this run: 12 reads, 5 writes" in proc.stdout
    assert "Second run: changed=0 on every project, 0 provider writes." in proc.stdout
    assert 'From: "KARTO" <karto.help@ro.ru>' in proc.stdout
    assert sorted(path.name for path in (tmp_path / "demo" / "secrets").iterdir()) == [
        "proven", "smtp2go-karto-production.password", "smtp2go-karto-staging.password"]
    # Run 2 proves nothing again (mail_verify: on_change): the inbox still holds run 1's two mails.
    assert proc.stdout.count("Sandbox inbox for karto.help@ro.ru: 2 message(s)") == 2
