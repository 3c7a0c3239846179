# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every Resend API module.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the Resend API.
      - Set it only for a test endpoint (such as this collection's sandbox).
      - If not set, the environment variable E(RESEND_API_URL) is used.
    type: str
    default: https://api.resend.com
  api_key:
    description:
      - A Resend API key with B(Full access) (C(re_) and more characters), sent in the C(Authorization) header
        as a Bearer token. A C(sending_access) key is refused for anything but sending mail.
      - The first key of a team is created by hand in the Resend dashboard (API Keys > Create API Key,
        Permission Full access).
      - This is the key that manages Resend, not the SMTP password; the SMTP password is a sending key made
        by M(karto.supabase_mail.resend_api_key).
      - If not set, the environment variable E(RESEND_API_KEY) is used.
      - Never logged or returned.
    type: str
    required: true
notes:
  - "Runs against an API, not the target host: use C(delegate_to: localhost) or C(connection: local)."
  - Resend limits requests per team (every key together) to a few per second and names the wait in
    C(retry-after) and C(ratelimit-reset); a 429 is retried after that time, within the retry budget.
  - Set the connection options once for all Resend modules with C(module_defaults) and the action group
    C(group/karto.supabase_mail.resend).
"""
