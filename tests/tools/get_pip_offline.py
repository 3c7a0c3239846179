"""Offline stand-in for the ``get-pip-<ver>.py`` script that ``ansible-test`` downloads.

``ansible-test`` bootstraps pip in every virtual environment it creates (one per sanity
test) by running ``~/.ansible/test/cache/get_pip_<ver>.py`` and downloads that script from
the Ansible CI file host when it is missing. That host is not reachable here, so
``tests/tools/ansible-test-sanity`` copies this file to that cache path instead.

It is run (through ansible-test's ``quiet_pip.py``) with the new venv's interpreter and the
same arguments as the real get-pip script, e.g.::

    --disable-pip-version-check pip==24.2 --no-setuptools --no-wheel

What it does:
1. installs the pip bundled with the standard library (``ensurepip``), no network needed;
2. upgrades to the requested pinned packages (``pip==24.2``) from the configured package
   index (pip reads /etc/pip.conf and ~/.config/pip/pip.conf even though ansible-test
   scrubs ``PIP_*`` variables from the environment); if that fails, the bundled pip is
   kept and a warning is printed: any pip >= 21 is good enough for ansible-test;
3. honours ``--no-setuptools`` / ``--no-wheel`` by removing what ensurepip added.
"""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    no_setuptools = '--no-setuptools' in args
    no_wheel = '--no-wheel' in args
    options = [a for a in args if a.startswith('-') and a not in ('--no-setuptools', '--no-wheel')]
    packages = [a for a in args if not a.startswith('-')]

    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'],
                          stdout=subprocess.DEVNULL)

    if packages:
        cmd = [sys.executable, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check'] + options + packages
        if subprocess.call(cmd) != 0:
            print('get_pip_offline: could not install %s; keeping the pip bundled with Python' % ' '.join(packages),
                  file=sys.stderr)

    unwanted = []
    if no_setuptools:
        unwanted.append('setuptools')
    if no_wheel:
        unwanted.append('wheel')
    if unwanted:
        # 'pip uninstall' of a package that is not installed only warns; keep it quiet.
        subprocess.call([sys.executable, '-m', 'pip', 'uninstall', '--yes', '--quiet',
                         '--disable-pip-version-check'] + unwanted,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return 0


if __name__ == '__main__':
    sys.exit(main())
