# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every SMTP2GO API module.
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the SMTP2GO API, including the C(/v3) suffix.
      - Use a regional endpoint such as V(https://eu-api.smtp2go.com/v3) to keep data in a region,
        or a test endpoint (such as this collection's sandbox).
      - If not set, the environment variable E(SMTP2GO_API_URL) is used.
    type: str
    default: https://api.smtp2go.com/v3
  api_key:
    description:
      - An SMTP2GO API key (C(api-...)), sent in the C(X-Smtp2go-Api-Key) header.
      - The key must be allowed to call the endpoints the module uses (Sending > API Keys > Permissions).
      - An API key is not an SMTP credential; SMTP needs an SMTP user (M(karto.supabase_mail.smtp2go_user)).
      - If not set, the environment variable E(SMTP2GO_API_KEY) is used.
      - Never logged or returned.
    type: str
    required: true
notes:
  - "Runs against an API, not the target host: use C(delegate_to: localhost) or C(connection: local)."
  - SMTP2GO blocks a client address for at least a minute after a burst of requests or errors, so
    the modules read once and write only what differs.
  - Set the connection options once for all SMTP2GO modules with C(module_defaults) and the
    action group C(group/karto.supabase_mail.smtp2go).
"""
