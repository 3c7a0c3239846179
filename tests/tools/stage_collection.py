"""Copy the checkout to ``<dest>/ansible_collections/karto/supabase_mail`` for ansible-test.

``ansible-test`` insists on running from a directory whose path ends in
``ansible_collections/<namespace>/<name>`` and resolves symlinks (``os.getcwd()``), so a
symlink to the checkout is not enough: it needs a real copy.

Only the collection's own files are copied: what git tracks plus untracked files that are
not ignored (``git ls-files --cached --others --exclude-standard``), so ``.venv/``,
``build/``, ``tests/output/`` and other ignored paths never reach ansible-test. Paths given
with ``--exclude`` (prefixes, relative to the checkout) are left out too. Without git the
tree is walked and the usual junk directories are skipped. Files keep their mode bits
(the shebang sanity test looks at the executable bit).

Usage: stage_collection.py SRC DEST_ROOT [--exclude PREFIX ...]
Prints the staged collection path.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

NAMESPACE = 'karto'
NAME = 'supabase_mail'
WALK_SKIP = {'.git', '.venv', 'build', '.pytest_cache', '__pycache__', '.ansible', 'output', '.tox'}


def list_files(src: str) -> list[str]:
    if os.path.isdir(os.path.join(src, '.git')) or os.path.isfile(os.path.join(src, '.git')):
        out = subprocess.run(
            ['git', '-C', src, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
            check=True, stdout=subprocess.PIPE,
        ).stdout.decode('utf-8')
        return sorted({p for p in out.split('\0') if p})
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d not in WALK_SKIP]
        for n in names:
            if n.endswith(('.pyc', '.tar.gz')):
                continue
            files.append(os.path.relpath(os.path.join(root, n), src))
    return sorted(files)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('src')
    parser.add_argument('dest_root')
    parser.add_argument('--exclude', action='append', default=[])
    opts = parser.parse_args()

    src = os.path.abspath(opts.src)
    dest = os.path.join(os.path.abspath(opts.dest_root), 'ansible_collections', NAMESPACE, NAME)
    excludes = [e.rstrip('/') for e in opts.exclude]

    if os.path.islink(dest) or os.path.isfile(dest):
        os.unlink(dest)
    elif os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)

    count = 0
    for rel in list_files(src):
        if any(rel == e or rel.startswith(e + '/') for e in excludes):
            continue
        s = os.path.join(src, rel)
        if not os.path.lexists(s) or os.path.isdir(s):
            continue  # deleted in the work tree but still in the index, or a submodule
        d = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if os.path.islink(s):
            os.symlink(os.readlink(s), d)
        else:
            shutil.copy2(s, d)
        count += 1

    print(dest)
    print('staged %d files' % count, file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
