"""The fault matrix (issue 12, item 1): every module that writes, against 429, 500, 502, 503, a dropped
connection, an answer slower than the timeout and a lost answer to its write. No cell may duplicate an
object, lose a once-shown secret, run past 2 x timeout, or fail without saying which service, which call
and what to do. The table goes to tests/output/fault-matrix.md; its totals are in the assertion message.
"""

import os

import pytest
import requests

from tests.collection_path import make_importable
from tests.integration import fault_matrix
from tests.integration.fault_matrix import CASES, FAULTS, MUST_BE_ZERO, READ_ONLY
from tests.sandbox.fixture import REPO_ROOT, SandboxControlError

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils._relay import registered_profiles  # noqa: E402 pylint: disable=wrong-import-position

OUTPUT = os.path.join(str(REPO_ROOT), "tests", "output", "fault-matrix.md")


def test_every_module_that_writes_is_in_the_matrix():
    """A new writing module (or a provider's) without a row here fails, as does a read-only one that writes."""
    modules = fault_matrix.writing_modules()
    writing = {name for name, writes in modules.items() if writes}
    assert writing - set(CASES) == set(), "modules that write but are not in the fault matrix (add a ModuleCase)"
    assert set(CASES) - writing == set(), "matrix rows for modules that no longer write"
    assert set(modules) - writing == set(READ_ONLY), "every module is either in the matrix or listed as read-only"
    # The rows are the registered providers' modules and Supabase's: a provider that lands later with a
    # module that writes fails the first assertion until its module has a row.
    assert {module.split("_")[0] for module in CASES} <= set(registered_profiles()) | {"supabase"}


def test_writing_module_detection_can_fail(tmp_path):
    (tmp_path / "x_reader.py").write_text("client.request('GET', '/things')\n")
    (tmp_path / "x_writer.py").write_text("class Thing(ManagedObject):\n    pass\n")
    (tmp_path / "x_mailer.py").write_text("auth.request('POST', '/otp', idempotent=False)\n")
    assert fault_matrix.writing_modules(str(tmp_path)) == {"x_mailer": True, "x_reader": False, "x_writer": True}


def test_a_fault_aimed_by_body_hits_only_that_request_and_is_journalled_with_its_id(sandbox):
    """What lets the matrix queue every cell's fault up front (tests/sandbox/core.py `body_contains`)."""
    api_key = sandbox.add_smtp2go_account()
    fault_id = sandbox.inject_fault(service="smtp2go_api", method="POST", path_contains="/users/smtp/view",
                                    body_contains='"fm-aimed"', action="status", status=503)
    url = sandbox.url("smtp2go_api") + "/users/smtp/view"
    other = requests.post(url, json={"username": "fm-other"}, headers={"X-Smtp2go-Api-Key": api_key}, timeout=10)
    aimed = requests.post(url, json={"username": "fm-aimed"}, headers={"X-Smtp2go-Api-Key": api_key}, timeout=10)
    assert (other.status_code, aimed.status_code) == (200, 503)
    entries = sandbox.journal(service="smtp2go_api", path_contains="/users/smtp/view")[-2:]
    assert [(e["json"]["username"], e["fault_id"]) for e in entries] == [("fm-other", None), ("fm-aimed", fault_id)]
    with pytest.raises(SandboxControlError):
        sandbox.inject_fault(service="smtp2go_api", body_contains="", action="drop")


def test_fault_matrix(sandbox):
    providers = sorted(registered_profiles())
    only = os.environ.get("FAULT_MATRIX_ONLY")  # a comma-separated subset of modules, while debugging one
    cells = [(case, case.new_cell(sandbox, fault)) for case in CASES.values()
             if not only or case.module in only.split(",") for fault in FAULTS]
    seq = max([e["seq"] for e in sandbox.journal()] or [0])
    ran = fault_matrix.run_cells(sandbox, cells)
    sandbox.clear_faults()
    journal = [e for e in sandbox.journal() if e["seq"] > seq]

    outcomes = [fault_matrix.judge(sandbox, case, cell, ran[cell.id], journal) for case, cell in cells]
    report = fault_matrix.table(outcomes, providers)
    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    with open(OUTPUT, "w") as handle:
        handle.write(report)

    bad = [o for o in outcomes if o.verdict in MUST_BE_ZERO]
    assert not bad, "%s\n%s\n(table: %s)" % (fault_matrix.summary(outcomes), "\n".join(
        "%s / %s: %s (%.1f s) %s" % (o.cell.module, o.cell.fault, o.verdict, o.elapsed, o.detail) for o in bad),
        OUTPUT)
    # Every cell either recovered or failed with a clear message.
    assert {o.verdict for o in outcomes} <= {"recovered", "failed clearly"}, fault_matrix.summary(outcomes)

    by_cell = {(o.cell.module, o.cell.fault): o for o in outcomes}
    if not only:
        # Issue 12: a connection reset on the SMTP2GO user create is recovered within the run, and a
        # generated password whose answer came late is not left with nobody holding it.
        assert by_cell[("smtp2go_user", "drop")].verdict == "recovered"
        assert by_cell[("smtp2go_user", "delay")].verdict == "recovered"
        # Issue 12: smtp2go_sender no longer says it "accepted the new sender" when no answer arrived.
        for fault in ("drop_answer", "delay"):
            said = by_cell[("smtp2go_sender", fault)].detail
            assert "was lost" in said and "accepted" not in said, said
        # A key shown once whose answer was lost is replaced within the run, not left without its value.
        for module in ("sendgrid_api_key", "resend_api_key"):
            assert by_cell[(module, "drop_answer")].verdict == "recovered"
