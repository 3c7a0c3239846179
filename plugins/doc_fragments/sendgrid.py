# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every SendGrid API module.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the SendGrid v3 API, without the C(/v3) suffix.
      - Use V(https://api.eu.sendgrid.com) for an EU regional subuser, or a test endpoint (such as this
        collection's sandbox).
      - If not set, the environment variable E(SENDGRID_API_URL) is used.
    type: str
    default: https://api.sendgrid.com
  api_key:
    description:
      - A SendGrid API key (C(SG.) and 66 more characters) allowed to manage the objects the module
        uses, sent in the C(Authorization) header as a Bearer token.
      - The first key of an account must be created by hand in the SendGrid app (Settings > API Keys);
        a Full Access key, or a Restricted one with the API Keys and Sender Verification permissions.
      - This is the key that manages SendGrid, not the SMTP password; the SMTP password is a key with
        only C(mail.send), made by M(karto.supabase_mail.sendgrid_api_key).
      - If not set, the environment variable E(SENDGRID_API_KEY) is used.
      - Never logged or returned.
    type: str
    required: true
notes:
  - "Runs against an API, not the target host: use C(delegate_to: localhost) or C(connection: local)."
  - SendGrid limits requests per endpoint and names the end of the window in C(X-RateLimit-Reset); a
    429 is retried after that time, within the retry budget.
  - Set the connection options once for all SendGrid modules with C(module_defaults) and the action
    group C(group/karto.supabase_mail.sendgrid).
"""
