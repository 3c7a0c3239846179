"""The built collection is what a user installs: it holds the collection and nothing of the
checkout's development or sandbox files, it installs into an empty collections path, and
`ansible-playbook karto.supabase_mail.setup_mail` from that install delivers a mail in the sandbox.
The execution environment definition (execution-environment.yml) builds a context that installs
that same tarball, and ansible-builder finds the collection's Python requirements in it.

One build and one install are shared by the tests of this file (a module-scoped fixture).
"""

import email.utils
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from tests.collection_path import REPO_ROOT
from tests.integration.playbook import ansible_env, run_playbook_file
from tests.integration.test_setup_mail_playbook import Setup

BIN = os.path.dirname(sys.executable)
GALAXY = yaml.safe_load(open(os.path.join(REPO_ROOT, "galaxy.yml"), encoding="utf-8"))
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])
# What a user gets: the collection's content, its docs and the files ansible-builder reads.
TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md", "requirements.txt",
             "bindep.txt", "changelogs", "docs", "meta", "playbooks", "plugins", "roles"}
# Playbooks by the name ansible-core looks up (playbooks/<name>.yml, no dash) and by their path.
PLAYBOOKS = ("setup_mail", "teardown_mail", "rotate_mail_credentials")
LEFT_OUT = ("changelogs/fragments/", "playbooks/inventory/sandbox/", "playbooks/inventory/many-projects/",
            "execution-environment.yml")


def run(command, cwd, env=None, timeout=120):
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(command), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def git_files(*paths):
    listing = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *paths], REPO_ROOT)
    return {name for name in listing.stdout.split("\0") if name and os.path.exists(os.path.join(REPO_ROOT, name))}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(tarball path, its member names, an otherwise empty collections path with it installed, the
    checkout's content files listed just before the build)."""
    root = tmp_path_factory.mktemp("package")
    content = git_files("plugins", "roles", "meta", "playbooks", "docs")
    env = ansible_env({"ANSIBLE_COLLECTIONS_PATH": str(root / "collections")})
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(root / "dist"), REPO_ROOT],
        REPO_ROOT, env)
    tarball = root / "dist" / TARBALL_NAME
    with tarfile.open(tarball) as archive:
        members = {member.name.rstrip("/") for member in archive.getmembers()}
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(root / "collections"),
         str(tarball)], root, env)
    return tarball, members, root / "collections", content


def test_the_tarball_holds_the_collection_and_no_dev_or_sandbox_file(package):
    _tarball, members, _installed, content = package
    assert {name.split("/", 1)[0] for name in members} == TOP_LEVEL
    for name in members:
        assert not name.startswith(LEFT_OUT), name
        assert "/secrets/" not in name and not name.endswith((".pyc", ".retry")), name
    # Complete: every file of the collection's content in the checkout is in it.
    missing = content - members
    assert {name for name in missing if not name.startswith(LEFT_OUT)} == set()
    for name in PLAYBOOKS:
        assert "playbooks/%s.yml" % name in members
        assert "playbooks/%s.yml" % name.replace("_", "-") in members


def test_setup_mail_from_the_installed_collection_delivers_in_the_sandbox(package, sandbox, tmp_path):
    _tarball, _members, installed, _content = package
    setup = Setup(sandbox, tmp_path, projects=1)
    # Only the install is on the collections path, and the run starts outside the checkout.
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}
    proc, _log = run_playbook_file("karto.supabase_mail.setup_mail",
                                   ["-i", str(setup.inventory), "-e", "@" + str(setup.vars_file)], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout and "changed=0" not in proc.stdout.split("PLAY RECAP")[1]
    mail = sandbox.wait_for_mail(setup.recipient)[-1]
    assert email.utils.parseaddr(mail["from"])[1] == "karto.help@ro.ru"
    assert mail["auth_user"] == "karto-%s" % setup.refs[0][:8]

    # The other two playbooks resolve by name from the install too (their runs are tested elsewhere).
    proc, _log = run_playbook_file("--syntax-check", ["-i", str(setup.inventory)]
                                   + ["karto.supabase_mail.%s" % name for name in PLAYBOOKS[1:]], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_execution_environment_installs_the_tarball_with_its_python_requirements(package, tmp_path):
    tarball, _members, installed, _content = package
    # The definition copies build/dist/<tarball>, relative to itself: the same layout in a temp dir.
    (tmp_path / "build" / "dist").mkdir(parents=True)
    (tmp_path / "build" / "dist" / TARBALL_NAME).write_bytes(tarball.read_bytes())
    with open(os.path.join(REPO_ROOT, "execution-environment.yml"), encoding="utf-8") as definition:
        (tmp_path / "execution-environment.yml").write_text(definition.read())
    builder = os.path.join(BIN, "ansible-builder")
    # `create` checks the file against ansible-builder's schema and writes the build context; no image is built.
    proc = run([builder, "create", "-f", "execution-environment.yml", "-c", "context"], tmp_path)
    assert "No matches" not in proc.stdout + proc.stderr  # a missing tarball is only a warning
    context = tmp_path / "context"
    assert (context / "_build" / "collections" / TARBALL_NAME).read_bytes() == tarball.read_bytes()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements == {"collections": [{"name": "collections/" + TARBALL_NAME, "type": "file"}]}
    containerfile = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()
    # The galaxy stage installs it from /build (where _build is copied), with ansible-core 2.19.
    assert "COPY _build /build" in containerfile and "collection install" in containerfile
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner"' in containerfile

    # What the build's introspection reads from the installed collection: requirements.txt and bindep.txt.
    found = yaml.safe_load(run([builder, "introspect", str(installed)], tmp_path).stdout)
    with open(os.path.join(REPO_ROOT, "requirements.txt"), encoding="utf-8") as requirements_txt:
        wanted = [line.strip() for line in requirements_txt if line.strip() and not line.startswith("#")]
    assert found == {"python": ["%s  # from collection karto.supabase_mail" % line for line in wanted], "system": []}
