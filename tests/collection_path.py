"""Makes the checkout importable and runnable as the collection karto.supabase_mail.

Ansible finds collections only under `<dir>/ansible_collections/<namespace>/<name>`; a
per-process temp dir with a symlink to the checkout keeps parallel test workers apart.
"""

import atexit
import os
import shutil
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_collections_dir = None


def collections_dir():
    """A directory holding ansible_collections/karto/supabase_mail -> this checkout."""
    global _collections_dir
    if _collections_dir is None:
        root = tempfile.mkdtemp(prefix="karto-collections-")
        namespace_dir = os.path.join(root, "ansible_collections", "karto")
        os.makedirs(namespace_dir)
        os.symlink(REPO_ROOT, os.path.join(namespace_dir, "supabase_mail"))
        atexit.register(shutil.rmtree, root, True)
        _collections_dir = root
    return _collections_dir


def make_importable():
    """Put the collection on sys.path so unit tests import it as Ansible would."""
    path = collections_dir()
    if path not in sys.path:
        sys.path.insert(0, path)
