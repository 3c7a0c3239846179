# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every Supabase Management API module.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the Supabase Management API, without the C(/v1) suffix.
      - Point it at a test endpoint (such as this collection's sandbox) to try changes safely.
      - If not set, the environment variable E(SUPABASE_API_URL) is used.
    type: str
    default: https://api.supabase.com
  access_token:
    description:
      - A Supabase personal access token (C(sbp_...)) or OAuth access token, sent as a Bearer token.
      - Reading the auth config needs C(auth_config_read); changing it needs
        C(auth_config_write) and C(project_admin_write).
      - If not set, the environment variable E(SUPABASE_ACCESS_TOKEN) is used.
      - Never logged or returned.
    type: str
    required: true
notes:
  - "Runs against an API, not the target host: use C(delegate_to: localhost) or C(connection: local)."
  - Set the connection options once for all modules of this collection with
    C(module_defaults) and the action group C(group/karto.supabase_mail.supabase).
"""
