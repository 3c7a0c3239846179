"""What each module's payload holds: the collection's module_utils files its imports reach.

A module starts by compiling every file of its payload from source (AnsiballZ runs from a zip, where
Python keeps no bytecode), so a file a module never uses still costs it start-up time on every task
(`make bench`, parts (a) and (e)). These rules keep the controller-only and single-purpose files out
of the modules that do not use them. The imports are read from the source with `ast`, the way
Ansible's own module_utils finder reads them.
"""

import ast
import os
import sys

import pytest

from tests.collection_path import REPO_ROOT

PACKAGE = "ansible_collections.karto.supabase_mail.plugins.module_utils"
MODULES_DIR = os.path.join(REPO_ROOT, "plugins", "modules")
UTILS_DIR = os.path.join(REPO_ROOT, "plugins", "module_utils")
MODULES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py"))


def imported_names(path):
    """Every absolute module name `path` imports (top level, in functions, or in try blocks)."""
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from <package> import _transport` imports the file _transport
            names.update("%s.%s" % (node.module, alias.name) for alias in node.names)
    return names


def own_utils(path):
    """The collection's module_utils files `path` imports directly, by file name (`_http`)."""
    return {name[len(PACKAGE) + 1:] for name in imported_names(path)
            if name.startswith(PACKAGE + ".") and os.path.exists(os.path.join(UTILS_DIR, name[len(PACKAGE) + 1:] + ".py"))}


def payload(module):
    """module_utils file names in `module`'s payload (its imports, and theirs)."""
    seen, todo = set(), sorted(own_utils(os.path.join(MODULES_DIR, module + ".py")))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(own_utils(os.path.join(UTILS_DIR, name + ".py")) - seen)
    return seen


def third_party(module):
    """Top-level packages outside the standard library and Ansible that `module`'s payload imports."""
    files = [os.path.join(MODULES_DIR, module + ".py")] + [os.path.join(UTILS_DIR, name + ".py") for name in payload(module)]
    tops = {name.split(".")[0] for path in files for name in imported_names(path)}
    return sorted(top for top in tops if top not in sys.stdlib_module_names and top not in ("ansible", "ansible_collections"))


def test_the_payload_walk_finds_what_a_module_imports():
    # The walk itself: supabase_smtp reaches _transport only through _http.
    assert {"_http", "_transport", "_supabase", "_engine", "_validate"} <= payload("supabase_smtp")
    assert payload("smtp_check") >= {"_smtp_probe", "_diagnose"}


@pytest.mark.parametrize("module", MODULES)
def test_no_module_carries_the_provider_registry(module):
    """_relay (the registry: checks every profile, imports every provider file) is read on the
    controller by the relay_profile lookup; a provider file gets RelayProfile from _relay_profile."""
    assert "_relay" not in payload(module)


@pytest.mark.parametrize("module", MODULES)
def test_only_the_dmarc_check_carries_the_dmarc_policy(module):
    """A module that only checks a domain name imports _domain, not the whole DMARC policy."""
    assert ("_dns_policy" in payload(module)) == (module == "sender_domain_check")


@pytest.mark.parametrize("module", MODULES)
def test_modules_need_nothing_beyond_python_and_ansible(module):
    """No library to install where a module runs: sender_domain_check asks DNS with _dns_query
    (importing dnspython took about 70 ms of each of its runs)."""
    assert third_party(module) == []


@pytest.mark.parametrize("module", MODULES)
def test_only_modules_that_explain_smtp_failures_carry_the_failure_classifier(module):
    explains_smtp = {"smtp_check", "supabase_email_test"}
    assert ("_diagnose" in payload(module)) == (module in explains_smtp)


@pytest.mark.parametrize("name", ["_relay_profile", "_domain"])
def test_the_small_shared_files_stay_free_of_imports(name):
    """Every provider file imports _relay_profile, every name check _domain: they import nothing
    of the collection, and at most `re`."""
    assert imported_names(os.path.join(UTILS_DIR, name + ".py")) <= {"__future__", "__future__.annotations", "re"}
