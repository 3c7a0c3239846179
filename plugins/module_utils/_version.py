# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the collection's version, for code that needs it at run time.

The one copy in Python (the User-Agent of every API call is built from it). ``galaxy.yml``
keeps its own literal ``version``, because ansible-galaxy and antsibull-changelog read it
there; tests/unit/plugins/module_utils/test_version.py fails when the two differ, so a
release bump changes both.

Not a public API; it may change without notice.
"""

from __future__ import annotations

COLLECTION_VERSION = "0.1.0"
