# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The HTTP options every API module of this collection takes (module_utils/_http.py).
    DOCUMENTATION = r"""
options:
  validate_certs:
    description:
      - Verify the API's TLS certificate. Turn off only for a test endpoint.
      - The certificate is checked against the system's CAs (OpenSSL's default store, which
        E(SSL_CERT_FILE) and E(SSL_CERT_DIR) can point elsewhere), or, when E(REQUESTS_CA_BUNDLE) or
        E(CURL_CA_BUNDLE) is set, against that bundle alone, as C(requests) does.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for one HTTP answer, between 1 and 3600.
      - Reads and updates are retried on HTTP 429, 502, 503, 504 and dropped connections with
        exponential backoff and jitter. On a 429 the wait the server names (C(Retry-After),
        C(X-RateLimit-Reset)) is honoured; on a 5xx it is not, since some APIs send their rate-limit
        window on every answer. A create is retried only on 429, and an answer lost after a create
        is followed by a read (after an answer that timed out, repeated until twice this time has
        passed since the create was sent, as the create may still land); the create is sent again
        only when that read does not find the object and the API refuses a second object of the same
        name, so it never makes two. All tries of one request together stay within twice this time,
        the last try's wait for an answer included.
    type: int
    default: 30
"""
