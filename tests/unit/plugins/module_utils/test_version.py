"""The collection version is written twice, galaxy.yml and module_utils/_version.py: they must agree."""

import os
import re

import yaml

from ansible_collections.karto.supabase_mail.plugins.module_utils import _version

# The collection root as Ansible imports it (plugins/module_utils/_version.py is two levels down).
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(_version.__file__))))

# Semantic versioning 2.0.0, as ansible-galaxy requires for a collection version.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def galaxy_version():
    with open(os.path.join(COLLECTION_ROOT, "galaxy.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)["version"]


def test_galaxy_yml_and_version_module_agree():
    assert _version.COLLECTION_VERSION == str(galaxy_version()), (
        "galaxy.yml has version %r but plugins/module_utils/_version.py has COLLECTION_VERSION %r:"
        " a release bump must change both" % (galaxy_version(), _version.COLLECTION_VERSION)
    )


def test_version_is_semver():
    assert isinstance(_version.COLLECTION_VERSION, str)
    assert SEMVER.match(_version.COLLECTION_VERSION), _version.COLLECTION_VERSION


def test_user_agent_carries_the_collection_version():
    # Imported here: _http needs requests, this module does not.
    from ansible_collections.karto.supabase_mail.plugins.module_utils._http import USER_AGENT

    assert "karto.supabase_mail/%s" % _version.COLLECTION_VERSION in USER_AGENT
