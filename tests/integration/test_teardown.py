"""playbooks/teardown-mail.yml end to end against the sandbox, for every registered provider.

One setup-mail.yml run configures one project per provider (two for the default provider, sharing its
sender), each with its own account, secrets folder and recipient, as that provider's own setup test
makes them (`tests/integration/test_*setup_mail*.py`). The teardown runs that follow, in order, are
recorded once (`runs`) and each test asserts on one of them:

1. the input check: removing the sender of one of the two projects that share it, and a pasted key, are
   refused before any request;
2. relay removal for one of those two projects: its own SMTP user and stored password go, the shared
   sender and the other project stay;
3. the default teardown, every project: Supabase back to its built-in mailer, every relay piece kept;
4. check mode with --diff and every removal asked: nothing written, changed said honestly;
5. every removal: the journal shows the deletes, the emulators no longer hold the pieces, the stored
   secrets are gone;
6. the same again: changed=0, no write.
"""

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.collection_path import REPO_ROOT, make_importable
from tests.integration.playbook import run_playbook_file
from tests.integration.setup_mail import SetupMail

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils import _relay  # noqa: E402 pylint: disable=wrong-import-position

# Long: `make test` runs it first, `make integration-heavy` alone (tests/conftest.py).
pytestmark = pytest.mark.heavy

SETUP_PLAYBOOK = "playbooks/setup-mail.yml"
TEARDOWN_PLAYBOOK = "playbooks/teardown-mail.yml"
REMOVE_ALL = {"mail_teardown_relay": True, "mail_teardown_sender": True}
# SMTP2GO's API reads with POST (…/view); every other POST, and PUT/PATCH/DELETE, is a write.
READ_ONLY_SERVICES = ("smtp_relay", "dns")


def setup_factories():
    """provider -> function(sandbox, tmp_path) making its SetupMail, from the providers' own setup tests."""
    folder = Path(__file__).parent
    factories = {}
    for path in sorted(folder.glob("test_*setup_mail*.py")):
        module = importlib.import_module("tests.integration." + path.stem)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, SetupMail) and value.provider:
                # A module's setup_for() finishes what its Setup leaves to the test (the mailbox's probe ports).
                factories[value.provider] = getattr(module, "setup_for", value)
    return factories


def profiles():
    return sorted(_relay.registered_profiles().values(), key=lambda profile: profile.name)


DEFAULT_PROVIDER = next(profile.name for profile in profiles() if profile.is_default)


# What each provider's setup leaves in its emulator, read back through the control API: the per-project
# credentials (names), the account-level senders (names) and whether teardown removes those senders.
def smtp2go_pieces(setup):
    account = setup.sandbox.smtp2go_account(setup.api_key)
    return ({user["username"] for user in account["users"]},
            {sender["email_address"] for sender in account["senders"]})


def sendgrid_pieces(setup):
    account = setup.account()
    names = {"supabase-%s" % ref for ref in setup.refs}
    return {key["name"] for key in account["keys"] if key["name"] in names}, {s["from_email"] for s in account["senders"]}


def resend_pieces(setup):
    team = setup.team()
    names = {"supabase-%s" % ref for ref in setup.refs}
    return {key["name"] for key in team["keys"] if key["name"] in names}, {domain["name"] for domain in team["domains"]}


def mailgun_pieces(setup):
    state = setup.sandbox.control("GET", "/mailgun/accounts/%s" % setup.api_key)
    domain = next(d for d in state["domains"] if d["name"] == setup.domain)
    return {c["login"] for c in domain["credentials"] if not c["system"]}, {domain["name"]}


def mailbox_pieces(setup):
    return set(), set()


# provider: (its API's journal service, its pieces, whether mail_teardown_sender removes its sender)
PIECES = {
    "smtp2go": ("smtp2go_api", smtp2go_pieces, True),
    "sendgrid": ("sendgrid_api", sendgrid_pieces, True),
    "resend": ("resend_api", resend_pieces, True),
    # The sending domain is added in Mailgun by hand, never by the collection: teardown keeps it.
    "mailgun": ("mailgun_api", mailgun_pieces, False),
    # The mailbox's own server: nothing created, no secret stored.
    "mailbox": (None, mailbox_pieces, False),
}


def is_write(entry):
    if entry["service"] in READ_ONLY_SERVICES:
        return False
    return entry["method"] in ("PUT", "PATCH", "DELETE") or (entry["method"] == "POST" and not entry["path"].endswith("/view"))


def is_delete(entry):
    return entry["method"] == "DELETE" or entry["path"].endswith("/remove")


def recap(stdout):
    """host -> changed count, from the PLAY RECAP."""
    return {match.group(1): int(match.group(2)) for match in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", stdout, re.M)}


def stored_files(setup):
    """Every file in the setup's secrets folder (the stored secrets and the proof fingerprints)."""
    return sorted(str(path.relative_to(setup.secrets_dir)) for path in setup.secrets_dir.rglob("*") if path.is_file())


class Step:
    """One playbook run and what the sandbox and the secrets folders looked like after it."""

    def __init__(self, world, proc, log, since):
        self.returncode, self.stdout, self.stderr, self.log = (proc.returncode, proc.stdout, proc.stderr, log) if proc else (0, "", "", "")
        self.journal = [entry for entry in world.sandbox.journal() if entry["seq"] > since]
        self.writes = [entry for entry in self.journal if is_write(entry)]
        self.recap = recap(self.stdout)
        self.pieces = {provider: PIECES[provider][1](setup) for provider, setup in world.setups.items()}
        self.files = {provider: stored_files(setup) for provider, setup in world.setups.items()}
        configs = {host: world.sandbox.supabase_auth_config(ref) for host, (_p, ref) in world.hosts.items()}
        self.smtp_hosts = {host: config["smtp_host"] for host, config in configs.items()}
        self.smtp_passes = {host: config["smtp_pass"] for host, config in configs.items()}
        self.secret_values = {provider: [(setup.secrets_dir / name).read_text().strip() for name in self.files[provider]
                                         if not name.startswith("proven/")] for provider, setup in world.setups.items()}

    @property
    def output(self):
        return "\n".join([self.stdout, self.stderr, self.log])


class World:
    """Every provider's setup in one inventory: host <provider><n> is project n of that provider."""

    def __init__(self, sandbox, tmp_path):
        self.sandbox = sandbox
        self.setups = {}
        self.hosts = {}  # host -> (provider, ref)
        inventory = {}
        factories = setup_factories()
        for profile in profiles():
            assert profile.name in factories, "no setup-mail test makes a %s setup to tear down" % profile.name
            folder = tmp_path / profile.name
            folder.mkdir()
            setup = factories[profile.name](sandbox, folder)
            self.setups[profile.name] = setup
            common = yaml.safe_load(setup.vars_file.read_text())
            own = yaml.safe_load(setup.inventory.read_text())["supabase_projects"]["hosts"]
            for index, (name, host_vars) in enumerate(sorted(own.items())):
                host = "%s%d" % (profile.name, index)
                # What teardown undoes is made without the preflight's probes and the proof mail, which
                # the setup tests prove: cheaper, and the same relay pieces and Supabase settings.
                inventory[host] = dict(common, mail_preflight=False, mail_verify="never", **host_vars)
                self.hosts[host] = (profile.name, host_vars["supabase_project_ref"])
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"supabase_projects": {"hosts": inventory}}))

    def run(self, playbook, *args, extra=None, timeout=300):
        since = self.last_seq()
        if extra is not None:
            args = args + ("-e", json.dumps(extra))
        proc, log = run_playbook_file(playbook, ["-i", str(self.inventory), "-f", str(len(self.hosts)), *args], timeout=timeout)
        return Step(self, proc, log, since)

    def prove(self):
        """The fingerprints setup-mail.yml writes once a proof mail arrived (mail_proof_dir), as a proving run leaves them."""
        for provider, ref in self.hosts.values():
            proof = self.setups[provider].secrets_dir / "proven" / ("%s.sha256" % ref)
            proof.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            proof.write_text("0" * 64 + "\n")
        return Step(self, None, "", self.last_seq())

    def last_seq(self):
        entries = self.sandbox.journal()
        return entries[-1]["seq"] if entries else 0

    def stored_secrets(self):
        """The stored secrets' values (to look for in outputs), read while they exist."""
        return [(setup.secrets_dir / name).read_text().strip()
                for setup in self.setups.values() for name in stored_files(setup) if not name.startswith("proven/")]


@pytest.fixture(scope="module")
def runs(sandbox, tmp_path_factory):
    world = World(sandbox, tmp_path_factory.mktemp("teardown"))
    shared = [host for host, (provider, _ref) in world.hosts.items() if provider == DEFAULT_PROVIDER]
    assert len(shared) == 2, "the default provider's setup test makes two projects sharing one sender"
    # Six projects in one run: minutes on a loaded machine.
    steps = {"setup": world.run(SETUP_PLAYBOOK, timeout=900)}
    assert steps["setup"].returncode == 0, steps["setup"].stdout[-6000:]
    steps["proven"] = world.prove()
    secrets = world.stored_secrets() + [setup.api_key for setup in world.setups.values()] + [setup.token for setup in world.setups.values()]
    # One run for both refusals: the input check lists every problem at once.
    steps["guard"] = world.run(TEARDOWN_PLAYBOOK, "--limit", shared[0], extra=dict(
        REMOVE_ALL, **{"%s_api_key" % DEFAULT_PROVIDER: "api-pasted-with-a-newline\n"}))
    steps["one_project"] = world.run(TEARDOWN_PLAYBOOK, "--limit", shared[0], extra={"mail_teardown_relay": True})
    steps["default"] = world.run(TEARDOWN_PLAYBOOK)
    steps["check"] = world.run(TEARDOWN_PLAYBOOK, "--check", "--diff", extra=REMOVE_ALL)
    steps["remove"] = world.run(TEARDOWN_PLAYBOOK, "--diff", extra=REMOVE_ALL)
    steps["again"] = world.run(TEARDOWN_PLAYBOOK, extra=REMOVE_ALL)
    return world, steps, shared, secrets


def test_setup_made_every_providers_pieces(runs):
    world, steps, _shared, _secrets = runs
    setup = steps["setup"]
    for provider, (service, _pieces, _removes_sender) in PIECES.items():
        credentials, senders = setup.pieces[provider]
        expected = len([host for host, (p, _ref) in world.hosts.items() if p == provider]) if service else 0
        assert len(credentials) == expected, (provider, credentials)
        assert bool(senders) == bool(service), (provider, senders)
        # A stored secret per credential; the mailbox's password is the user's.
        assert len(setup.files[provider]) == expected, (provider, setup.files[provider])
    assert all(setup.smtp_hosts.values()), setup.smtp_hosts


def test_every_registered_provider_has_a_teardown_entry_point_and_is_covered():
    assert sorted(PIECES) == [profile.name for profile in profiles()]
    for profile in profiles():
        role = Path(REPO_ROOT) / "roles" / profile.name
        assert (role / "tasks" / "teardown.yml").is_file(), profile.name
        spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        assert "teardown" in spec, profile.name
        assert ("mail_teardown_sender" in spec["teardown"]["options"]) == PIECES[profile.name][2], profile.name


def test_removing_a_sender_another_project_still_uses_is_refused_before_any_request(runs):
    world, steps, shared, _secrets = runs
    guard = steps["guard"]
    assert guard.returncode != 0
    assert ("mail_teardown_sender would remove a sender that %s, left out of this run, may still send with (From ro.ru "
            "through %s)" % (shared[1], DEFAULT_PROVIDER)) in guard.stdout
    assert "nothing was changed yet" in guard.stdout
    assert guard.journal == [], guard.journal
    assert guard.pieces == steps["proven"].pieces and guard.files == steps["proven"].files
    assert all(guard.smtp_hosts.values())


def test_a_bad_key_fails_naming_it_before_any_request(runs):
    _world, steps, shared, _secrets = runs
    bad = steps["guard"]
    assert ("%s_api_key must not be empty nor contain whitespace or line breaks" % DEFAULT_PROVIDER) in bad.stdout
    assert re.search(r"^%s\s+:.*failed=1" % shared[0], bad.stdout, re.M), bad.stdout[-2000:]
    assert bad.journal == [], bad.journal


def test_relay_removal_for_one_project_keeps_the_shared_sender_and_the_other_project(runs):
    world, steps, shared, _secrets = runs
    one = steps["one_project"]
    assert one.returncode == 0, one.stdout[-4000:]
    ref0 = world.hosts[shared[0]][1]
    credentials, senders = one.pieces[DEFAULT_PROVIDER]
    before_credentials, before_senders = steps["setup"].pieces[DEFAULT_PROVIDER]
    assert len(credentials) == 1 and credentials < before_credentials
    assert senders == before_senders
    # Supabase first, then the user, then its password: one PATCH, one removal, the other project untouched.
    assert [(entry["service"], entry["method"]) for entry in one.writes] == [
        ("supabase_api", "PATCH"), ("%s_api" % DEFAULT_PROVIDER, "POST")]
    assert ref0 in one.writes[0]["path"] and is_delete(one.writes[1])
    assert one.smtp_hosts[shared[0]] in (None, "") and one.smtp_hosts[shared[1]]
    # The other project still logs in with its own stored password.
    assert one.smtp_passes[shared[1]] in one.secret_values[DEFAULT_PROVIDER]
    assert len(one.files[DEFAULT_PROVIDER]) == len(steps["proven"].files[DEFAULT_PROVIDER]) - 2  # its secret and proof
    assert "proven/%s.sha256" % ref0 not in one.files[DEFAULT_PROVIDER]


def test_default_teardown_resets_supabase_and_keeps_every_relay_piece(runs):
    _world, steps, _shared, _secrets = runs
    default = steps["default"]
    assert default.returncode == 0, default.stdout[-4000:]
    assert not any(default.smtp_hosts.values()), default.smtp_hosts
    assert default.pieces == steps["one_project"].pieces
    assert all(not name.startswith("proven/") for files in default.files.values() for name in files)
    assert {name for files in default.files.values() for name in files} == {
        name for files in steps["one_project"].files.values() for name in files if not name.startswith("proven/")}
    assert {entry["service"] for entry in default.writes} == {"supabase_api"}
    assert "The relay pieces were kept, so setup-mail.yml can switch back" in default.stdout


def test_check_mode_writes_nothing_and_says_what_would_go(runs):
    world, steps, _shared, _secrets = runs
    check = steps["check"]
    assert check.returncode == 0, check.stdout[-4000:]
    assert check.writes == []
    assert check.pieces == steps["default"].pieces and check.files == steps["default"].files
    for host, (provider, _ref) in world.hosts.items():
        credentials, senders = check.pieces[provider]
        removable = bool(credentials) or (PIECES[provider][2] and bool(senders))
        assert (check.recap[host] > 0) == removable, (host, check.recap)
    # --diff names what would go, never a secret.
    for provider, (credentials, _senders) in check.pieces.items():
        for name in credentials:
            assert name in check.stdout, (provider, name)


def test_removal_deletes_the_pieces_and_the_stored_secrets(runs):
    world, steps, _shared, secrets = runs
    remove = steps["remove"]
    assert remove.returncode == 0, remove.stdout[-4000:]
    for provider, (service, _pieces, removes_sender) in PIECES.items():
        credentials, senders = remove.pieces[provider]
        before_credentials, before_senders = steps["check"].pieces[provider]
        assert credentials == set(), (provider, credentials)
        assert senders == (set() if removes_sender else before_senders), (provider, senders)
        deletes = [entry for entry in remove.journal if entry["service"] == service and is_delete(entry)]
        assert len(deletes) == len(before_credentials) + (len(before_senders) if removes_sender else 0), (provider, deletes)
        assert remove.files[provider] == [], (provider, remove.files[provider])
    assert "The Mailgun sending domain" in remove.stdout and "Nothing to remove for the mailbox path" in remove.stdout
    for step in steps.values():
        for secret in secrets:
            assert secret not in step.output


def test_a_second_removal_changes_nothing_and_writes_nothing(runs):
    _world, steps, _shared, _secrets = runs
    again = steps["again"]
    assert again.returncode == 0, again.stdout[-4000:]
    assert again.recap and set(again.recap.values()) == {0}, again.recap
    assert again.writes == []
    assert again.pieces == steps["remove"].pieces and again.files == steps["remove"].files
