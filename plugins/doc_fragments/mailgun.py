# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options of every Mailgun API module.
    DOCUMENTATION = r"""
options:
  region:
    description:
      - The Mailgun region the domain was created in. V(us) is C(https://api.mailgun.net), V(eu) is
        C(https://api.eu.mailgun.net). A domain is seen only through its region's URL; the other answers
        HTTP 404.
      - Ignored when O(api_url) is set.
      - If not set, the environment variable E(MAILGUN_REGION) is used.
    type: str
    choices: [eu, us]
    default: us
  api_url:
    description:
      - Base URL of the Mailgun API, without the C(/v3) suffix, instead of the region's, for example a
        test endpoint (such as this collection's sandbox).
      - If not set, the environment variable E(MAILGUN_API_URL) is used, else the URL of O(region).
    type: str
  api_key:
    description:
      - A Mailgun API key allowed to manage domains and SMTP credentials, sent with HTTP Basic
        authentication as the user C(api).
      - Create it once by hand in the Mailgun console (API Security > Add new key, role Admin) and copy
        it at once; Mailgun shows it only then. Mailgun's key roles are admin, developer, basic (an
        analyst) and sending; which of the others may manage SMTP credentials is not documented. A
        Domain Sending Key may only send messages.
      - This key manages Mailgun; it is never the SMTP password.
      - If not set, the environment variable E(MAILGUN_API_KEY) is used.
      - Never logged or returned.
    type: str
    required: true
notes:
  - "Runs against an API, not the target host: use C(delegate_to: localhost) or C(connection: local)."
  - Mailgun takes form bodies, not JSON; the modules send C(multipart/form-data), as Mailgun's API
    description says. A JSON body would reach Mailgun as a request without fields.
  - A 429 names its wait in its message ("try again after 120 seconds"); it is retried after that time
    when it fits in the retry budget. Mailgun documents no rate-limit headers.
  - Set the connection options once for all Mailgun modules with C(module_defaults) and the action group
    C(group/karto.supabase_mail.mailgun).
"""
