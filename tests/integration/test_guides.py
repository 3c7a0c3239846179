"""docs/guide.md and docs/ru/guide.md stay runnable.

- The ```bash blocks are the sandbox walkthrough: they run in order, as written, in one bash, from the
  root of the checkout, the way a new user pastes them (their own sandbox, their own scratch runbook
  under a temp dir), and must end with the proof mail in the sandbox's inbox and the secrets encrypted.
  The Russian guide's blocks are the same text (checked here, and by tests/unit/test_docs.py), so one run
  covers both guides.
- The ```sh blocks are for real accounts and cannot run here: bash parses them, every option they give
  an Ansible command exists, every playbook they name passes `--syntax-check`, every module and module
  option of an ad-hoc command exists, and a tarball name carries the collection's version.
- The troubleshooting table names every failure class the collection reports.
"""

import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from ansible.parsing.splitter import parse_kv

from scripts.module_docs import ansible_doc
from tests.collection_path import REPO_ROOT, make_importable
from tests.integration.playbook import ansible_env

make_importable()
from ansible_collections.karto.supabase_mail.plugins.module_utils._diagnose import FAILURE_CLASSES  # noqa: E402 pylint: disable=wrong-import-position

GUIDES = {"en": os.path.join(REPO_ROOT, "docs", "guide.md"), "ru": os.path.join(REPO_ROOT, "docs", "ru", "guide.md")}
FENCE_RE = re.compile(r"^ {0,3}(`{3,})\s*([^`\s]*)\s*$")
BIN = os.path.dirname(sys.executable)
WALKTHROUGH_TIMEOUT = 600
GALAXY_VERSION = yaml.safe_load(open(os.path.join(REPO_ROOT, "galaxy.yml"), encoding="utf-8"))["version"]
# The Ansible commands whose options are checked, with the words that pick their sub-command's help.
SUBCOMMAND_WORDS = {"ansible-galaxy": 2, "ansible-vault": 1, "ansible-playbook": 0, "ansible": 0}


def blocks(path):
    """[(language, text)] of the fenced code blocks of a markdown file."""
    found, fence = [], None
    with open(path, encoding="utf-8") as handle:
        for line in handle.read().split("\n"):
            match = FENCE_RE.match(line)
            if fence is None and match:
                fence = (match.group(1), match.group(2).lower(), [])
            elif fence is not None and line.strip() == fence[0]:
                found.append((fence[1], "\n".join(fence[2])))
                fence = None
            elif fence is not None:
                fence[2].append(line)
    assert fence is None, "%s: a code block is never closed" % path
    return found


def of_language(language, guide="en"):
    return [text for lang, text in blocks(GUIDES[guide]) if lang == language]


def test_the_russian_guide_has_the_same_commands_as_the_english_one():
    assert blocks(GUIDES["ru"]) == blocks(GUIDES["en"])
    assert len(of_language("bash")) >= 5 and len(of_language("sh")) >= 5


@pytest.mark.parametrize("guide", sorted(GUIDES))
def test_the_troubleshooting_table_names_every_failure_class(guide):
    with open(GUIDES[guide], encoding="utf-8") as handle:
        rows = {line.split("|")[1].strip() for line in handle if line.startswith("| `")}
    assert {"`%s`" % name for name in FAILURE_CLASSES} <= rows


@pytest.fixture
def short_tmp():
    """TMPDIR for the walkthrough, standing in for /tmp: the sandbox's mail server keeps its Unix sockets
    under TMPDIR (sun_path holds 108 bytes; pytest's tmp_path can be longer), and Postfix, running as its
    own user, must traverse it (mkdtemp makes it 0700)."""
    path = tempfile.mkdtemp(prefix="karto-guide-", dir="/tmp")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_the_sandbox_walkthrough_delivers_the_proof_mail(short_tmp):
    script = "\n".join(of_language("bash"))
    # A new user's shell: no Ansible settings, no make state of a caller; mktemp puts the runbook in short_tmp.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("ANSIBLE_") and name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}}
    env.update(TMPDIR=str(short_tmp), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output = process.communicate(timeout=WALKTHROUGH_TIMEOUT)[0]
    finally:
        # The walkthrough ends with `kill "$SANDBOX_PID"`; a failed block leaves the sandbox running.
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)
    runbooks = list(short_tmp.glob("tmp.*/karto-mail"))
    sandbox_log = "".join(path.read_text(errors="replace")[-3000:] for path in short_tmp.glob("tmp.*/karto-mail/sandbox.log"))
    assert process.returncode == 0, output[-6000:] + "\n--- sandbox.log:\n" + sandbox_log

    assert "Sent: sent (otp mail to karto.help@ro.ru)" in output, output[-4000:]
    assert re.search(r"staging\s*: ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0", output), output[-3000:]
    assert "From: KARTO <karto.help@ro.ru> | Subject: " in output, output[-2000:]
    assert "| relayed as supabase-kartostagingrefabcde" in output, output[-2000:]

    # What the guide says about the secrets: encrypted in the inventory, the generated password too.
    (runbook,) = runbooks
    vault = (runbook / "inventory" / "group_vars" / "supabase_projects" / "vault.yml").read_text()
    assert vault.count("!vault |\n") == 3 and vault.count("$ANSIBLE_VAULT;1.2;AES256;karto") == 3
    assert "sbp_" not in vault and "api-Karto" not in vault
    (stored,) = (runbook / "secrets").glob("smtp2go-*.password")
    assert stored.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;karto")
    assert not (runbook / "sandbox.json").exists()  # the sandbox was stopped (it removes its file)


# ---------------------------------------------------------------------------- real-account blocks


def commands():
    """Every simple command of the ```sh blocks, as a list of words."""
    for block in of_language("sh"):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            words = []
            for token in list(lexer) + [";"]:
                if token in {";", "&&", "||", "|", "&"}:
                    if words:
                        yield words
                    words = []
                elif token in {">>", ">", "<"}:
                    words.append(None)  # the next word is a redirection target, not an argument
                else:
                    words.append(token)


def arguments(words):
    """The words of a command without redirections."""
    kept, skip = [], False
    for word in words:
        if word is None:
            skip = True
        elif skip:
            skip = False
        else:
            kept.append(word)
    return kept


@functools.lru_cache(maxsize=None)
def help_text(*command):
    proc = subprocess.run([os.path.join(BIN, command[0]), *command[1:], "--help"], env=ansible_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_real_account_block_is_valid_bash():
    for block in of_language("sh"):
        proc = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, "%s\n%s" % (block, proc.stderr)


def test_every_option_of_an_ansible_command_exists():
    ansible_commands = [arguments(words) for words in commands() if words[0] in SUBCOMMAND_WORDS]
    # The help texts at once: each ansible-* start costs a second or more.
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda command: help_text(*command),
                      {tuple(words[: 1 + SUBCOMMAND_WORDS[words[0]]]) for words in ansible_commands}))
    checked = 0
    for words in commands():
        words = arguments(words)
        if words[0] not in SUBCOMMAND_WORDS:
            continue
        command = tuple(words[: 1 + SUBCOMMAND_WORDS[words[0]]])
        text = help_text(*command)
        for word in words[len(command):]:
            if word.startswith("-"):
                option = word.split("=", 1)[0]
                assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), text), (option, words)
                checked += 1
        for word in words:
            for version in re.findall(r"karto-supabase_mail-([0-9][^/]*?)\.tar\.gz", word):
                assert version == GALAXY_VERSION, (word, GALAXY_VERSION)
    assert checked >= 10


def test_every_playbook_of_the_real_account_blocks_passes_syntax_check():
    playbooks = sorted({word for words in commands() if words[0] == "ansible-playbook"
                        for word in arguments(words)[1:] if word.startswith("karto.supabase_mail.")})
    assert {"karto.supabase_mail.setup_mail", "karto.supabase_mail.teardown_mail",
            "karto.supabase_mail.rotate_mail_credentials"} <= set(playbooks)
    # An extra variable the guide passes is one the playbook reads.
    for words in commands():
        words = arguments(words)
        if words[0] == "ansible-playbook" and "-e" in words:
            playbook = next(word for word in words if word.startswith("karto.supabase_mail."))
            path = os.path.join(REPO_ROOT, "playbooks", playbook.rsplit(".", 1)[1].replace("_", "-") + ".yml")
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            for index, word in enumerate(words[:-1]):
                if word == "-e":
                    name = words[index + 1].split("=", 1)[0]
                    assert re.search(r"\b%s\b" % name, text), (name, path)
    inventory = os.path.join(REPO_ROOT, "playbooks", "inventory", "example")
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", "-i", inventory, *playbooks],
                          env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_ad_hoc_module_and_option_exists():
    calls = []
    for words in commands():
        words = arguments(words)
        if words[0] == "ansible":
            module = words[words.index("-m") + 1]
            calls.append((module, parse_kv(words[words.index("-a") + 1])))
    assert calls
    docs = ansible_doc(sorted({module.rsplit(".", 1)[1] for module, _args in calls}))
    for module, args in calls:
        options = docs[module]["doc"]["options"]
        assert set(args) <= set(options), (module, sorted(set(args) - set(options)))
        assert {name for name, spec in options.items() if spec.get("required")} <= set(args) | {"access_token"}


def test_the_inventory_examples_are_valid_yaml_with_project_refs():
    examples = [yaml.safe_load(text) for text in of_language("yaml")]
    assert examples
    for example in examples:
        for host in example["supabase_projects"]["hosts"].values():
            assert re.fullmatch(r"[a-z]{20}", host["supabase_project_ref"])
