"""Check that ``ansible-doc`` renders every module of the collection (``make docs-check``).

``ansible-doc`` exits 0 even when a module cannot be found or its documentation cannot be
loaded (it only prints a warning and an empty result), so its exit code proves nothing.
For each module in ``plugins/modules`` this script:

* renders the text page and fails on a non-zero exit code, on any ``[WARNING]``,
  ``[ERROR]`` or ``[DEPRECATION WARNING]`` on stderr, or when the page does not name
  the module; the page is saved to ``--output-dir`` when given;
* loads ``ansible-doc --json`` and fails unless it holds DOCUMENTATION (with
  ``short_description`` and ``description``), EXAMPLES and RETURN;
* checks that ``ansible-doc --list`` shows exactly the modules of ``plugins/modules``.

When the collection found under DIR is an installed artifact (it has a ``MANIFEST.json``;
the checkout has none), its ``FILES.json`` is checked too: it must hold LICENSE, README.md,
the changelog, meta/runtime.yml and every module, role and top-level playbook of the
checkout, and none of the development files ``build_ignore`` in galaxy.yml keeps out
(tests/, .venv/, build/, .ci/, benchmarks/, scripts/, the sandbox inventory, ...).

Usage: docs_check.py --collections-path DIR [--output-dir DIR] [--label TEXT]
The collection is looked up only in DIR (ANSIBLE_COLLECTIONS_PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

FQCN = 'karto.supabase_mail'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BAD_STDERR = re.compile(r'^\s*\[(WARNING|ERROR|DEPRECATION WARNING)\]', re.MULTILINE)

# What a built artifact must and must not hold (paths relative to the collection root).
ARTIFACT_REQUIRED = ('LICENSE', 'README.md', 'CHANGELOG.md', 'changelogs/changelog.yaml',
                     'changelogs/config.yaml', 'meta/runtime.yml', 'requirements.txt')
ARTIFACT_FORBIDDEN_PREFIXES = ('tests/', '.venv/', 'build/', '.ci/', 'benchmarks/', 'scripts/',
                               '.git/', '.pytest_cache/', '.ansible/', 'demo-state/',
                               'playbooks/inventory/sandbox/')
ARTIFACT_FORBIDDEN_FILES = ('Makefile', 'requirements-dev.txt', '.ansible-lint', '.gitignore',
                            'changelogs/.plugin-cache.yaml')


def modules_in_checkout() -> list[str]:
    mod_dir = os.path.join(REPO, 'plugins', 'modules')
    if not os.path.isdir(mod_dir):
        return []
    return sorted(
        os.path.splitext(n)[0] for n in os.listdir(mod_dir)
        if n.endswith('.py') and n != '__init__.py'
    )


def artifact_errors(collection_dir: str) -> list[str]:
    """What is missing from, or should not be in, an installed artifact (from its FILES.json)."""
    try:
        with open(os.path.join(collection_dir, 'FILES.json'), encoding='utf-8') as f:
            entries = json.load(f)['files']
    except (OSError, ValueError, KeyError) as exc:
        return ['artifact %s: cannot read FILES.json: %s' % (collection_dir, exc)]
    files = {e['name'] for e in entries if e.get('ftype') == 'file'}
    wanted = list(ARTIFACT_REQUIRED)
    wanted += ['plugins/modules/%s.py' % m for m in modules_in_checkout()]
    roles_dir = os.path.join(REPO, 'roles')
    if os.path.isdir(roles_dir):
        wanted += ['roles/%s/meta/argument_specs.yml' % r for r in sorted(os.listdir(roles_dir))
                   if os.path.isfile(os.path.join(roles_dir, r, 'meta', 'argument_specs.yml'))]
    playbooks_dir = os.path.join(REPO, 'playbooks')
    if os.path.isdir(playbooks_dir):
        wanted += ['playbooks/%s' % n for n in sorted(os.listdir(playbooks_dir)) if n.endswith(('.yml', '.yaml'))]
    errors = ['artifact lacks %s' % w for w in wanted if w not in files]
    unwanted = sorted(
        n for n in files
        if n.startswith(ARTIFACT_FORBIDDEN_PREFIXES) or n in ARTIFACT_FORBIDDEN_FILES
        or '/__pycache__/' in '/' + n or n.endswith('.pyc')
    )
    if unwanted:
        errors.append('artifact holds development files (see build_ignore in galaxy.yml): %s' % ', '.join(unwanted))
    return errors


def ansible_doc(ansible_doc_bin: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ansible_doc_bin, *args], env=env, check=False,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--collections-path', required=True)
    parser.add_argument('--output-dir')
    parser.add_argument('--label', default='')
    parser.add_argument('--ansible-doc', default=os.path.join(os.path.dirname(sys.executable), 'ansible-doc'))
    opts = parser.parse_args()

    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.abspath(opts.collections_path),
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', NO_COLOR='1')
    label = ' (%s)' % opts.label if opts.label else ''

    modules = modules_in_checkout()
    if not modules:
        print('docs-check: no modules in plugins/modules', file=sys.stderr)
        return 1
    if opts.output_dir:
        os.makedirs(opts.output_dir, exist_ok=True)

    errors: list[str] = []
    for mod in modules:
        name = '%s.%s' % (FQCN, mod)

        text = ansible_doc(opts.ansible_doc, env, '-t', 'module', name)
        bad = BAD_STDERR.findall(text.stderr)
        if text.returncode != 0 or bad or ('MODULE %s' % name) not in text.stdout:
            errors.append('%s: ansible-doc (text) rc=%d\n%s' % (name, text.returncode, text.stderr.strip()))
            continue
        if opts.output_dir:
            with open(os.path.join(opts.output_dir, '%s.txt' % mod), 'w', encoding='utf-8') as f:
                f.write(text.stdout)

        js = ansible_doc(opts.ansible_doc, env, '-t', 'module', '--json', name)
        try:
            data = json.loads(js.stdout).get(name) or {}
        except ValueError:
            data = {}
        doc = data.get('doc') or {}
        missing = [k for k, ok in (
            ('DOCUMENTATION', bool(doc)),
            ('short_description', bool(doc.get('short_description'))),
            ('description', bool(doc.get('description'))),
            ('EXAMPLES', bool((data.get('examples') or '').strip())),
            ('RETURN', bool(data.get('return'))),
        ) if not ok]
        if js.returncode != 0 or BAD_STDERR.search(js.stderr) or missing:
            errors.append('%s: ansible-doc --json rc=%d, missing: %s\n%s'
                          % (name, js.returncode, ', '.join(missing) or '-', js.stderr.strip()))
            continue
        print('docs-check%s: %s renders (%d options)' % (label, name, len(doc.get('options') or {})))

    listing = ansible_doc(opts.ansible_doc, env, '-t', 'module', '--list', '--json', FQCN)
    try:
        listed = sorted(k[len(FQCN) + 1:] for k in json.loads(listing.stdout))
    except ValueError:
        listed = []
    if listed != modules:
        errors.append('ansible-doc --list %s shows %s, plugins/modules has %s\n%s'
                      % (FQCN, listed, modules, listing.stderr.strip()))

    installed = os.path.join(os.path.abspath(opts.collections_path), 'ansible_collections', *FQCN.split('.'))
    if os.path.isfile(os.path.join(installed, 'MANIFEST.json')):
        content_errors = artifact_errors(installed)
        errors.extend(content_errors)
        if not content_errors:
            print('docs-check%s: artifact contents as expected (LICENSE, changelog, no development files)' % label)

    for e in errors:
        print('docs-check%s: FAILED: %s' % (label, e), file=sys.stderr)
    if errors:
        return 1
    print('docs-check%s: all %d modules render' % (label, len(modules)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
