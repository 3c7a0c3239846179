# -*- coding: utf-8 -*-
# Copyright: karto maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to karto.supabase_mail: the one HTTP base every provider client stands on.

Not a public API; it may change without notice.
"""

from __future__ import annotations

import email.utils
import random
import time

from ansible_collections.karto.supabase_mail.plugins.module_utils._secrets import Redactor

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by the sanity import test
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

COLLECTION_VERSION = "0.1.0"
USER_AGENT = "karto.supabase_mail/%s" % COLLECTION_VERSION

# Statuses that mean "not processed, try later" or "a proxy lost the answer".
RETRYABLE_STATUSES = (429, 502, 503, 504)
# Rate-limit headers, most explicit first. Values are seconds to wait, or an epoch time.
WAIT_HEADERS = ("Retry-After", "X-RateLimit-Reset", "RateLimit-Reset")
# An epoch timestamp is far larger than any sane "seconds to wait".
_EPOCH_THRESHOLD = 10 ** 9


def http_argument_spec():
    """validate_certs and timeout, as every API module takes them (doc fragment karto.supabase_mail.http)."""
    return dict(
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="int", default=30),
    )


class ApiError(Exception):
    """One error shape for every provider: what failed, how, and what the provider said."""

    def __init__(self, message, status=None, code=None, provider_message=None,
                 method=None, path=None, outcome_unknown=False, retry_after=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.provider_message = provider_message
        self.method = method
        self.path = path
        # True when a non-idempotent write may or may not have been applied: re-read first.
        self.outcome_unknown = outcome_unknown
        self.retry_after = retry_after

    def to_result(self):
        """The fields a module adds to fail_json so playbooks can branch on them."""
        return {
            "status": self.status,
            "error_code": self.code,
            "provider_message": self.provider_message,
        }


def parse_wait_header(value, now=None):
    """Seconds to wait from a Retry-After / *RateLimit-Reset value, or None if unusable.

    Accepts delta-seconds, an epoch timestamp, or an HTTP date.
    """
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - now)
    if number > _EPOCH_THRESHOLD:
        return max(0.0, number - now)
    return max(0.0, number)


class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a total time budget.

    A server-named wait (Retry-After, rate-limit reset) replaces the backoff step; if it does
    not fit in what is left of the budget the caller gives up at once rather than sleep in vain.
    """

    def __init__(self, budget=60.0, base_delay=0.5, max_delay=20.0, rng=None):
        self.budget = float(budget)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self._rng = rng or random.Random()

    def backoff(self, attempt):
        """Jittered delay before retry number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return self._rng.uniform(ceiling / 2.0, ceiling)

    @staticmethod
    def server_wait(headers, now=None):
        if not headers:
            return None
        for name in WAIT_HEADERS:
            wait = parse_wait_header(headers.get(name), now=now)
            if wait is not None:
                return wait
        return None

    def next_delay(self, attempt, elapsed, headers=None, now=None):
        """Seconds to sleep before the next try, or None when the budget forbids another try."""
        remaining = self.budget - elapsed
        wanted = self.server_wait(headers, now=now)
        if wanted is None:
            wanted = self.backoff(attempt)
        else:
            # A reset of "0" still needs a breath, and jitter spreads parallel workers.
            wanted = wanted + self._rng.uniform(0.05, 0.25)
        if wanted >= remaining:
            return None
        return wanted


class ApiClient:
    """Shared JSON-over-HTTPS client: auth header, User-Agent, timeouts, retries, errors.

    Provider clients subclass it, set `service_name`, and implement `auth_headers()` and
    `parse_error(status, body)` returning (code, message).
    """

    service_name = "API"

    def __init__(self, base_url, timeout=30, validate_certs=True, retry_budget=None,
                 secrets=(), session=None, sleep=time.sleep, clock=time.monotonic):
        if not HAS_REQUESTS:
            raise RuntimeError("the python 'requests' library is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.validate_certs = validate_certs
        self.redact = Redactor(secrets)
        budget = retry_budget if retry_budget is not None else self.timeout * 2
        self.retry = RetryPolicy(budget=budget)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self._sleep = sleep
        self._clock = clock
        self.requests_sent = 0

    # --- provider hooks -------------------------------------------------
    def auth_headers(self):
        return {}

    def explain(self, error):
        """One sentence for a failed call that names what to fix; providers override it."""
        return error.message

    def parse_error(self, status, body):
        """(provider error code, provider message) from a decoded error body."""
        if isinstance(body, dict):
            return body.get("code") or body.get("error_code"), body.get("message") or body.get("error")
        return None, body if isinstance(body, str) and body else None

    # --- the request loop -------------------------------------------------
    def request(self, method, path, json_body=None, params=None, idempotent=None,
                expected=(200, 201, 204), retry=True, extra_headers=None, raw=False):
        """Send one logical request and return the decoded JSON body (or None).

        `idempotent` defaults from the method. A non-idempotent request is retried only when
        the server certainly did not process it (429); on a lost answer it raises ApiError with
        outcome_unknown=True so the caller can re-read instead of creating twice.
        `retry=False` sends once, for callers that must see a 429 themselves. `raw=True` returns
        the requests Response for any status instead of decoding or raising.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
        url = self.base_url + path
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            headers = self.auth_headers()
            headers.update(extra_headers or {})
            try:
                self.requests_sent += 1
                response = self.session.request(
                    method, url, json=json_body, params=params, headers=headers,
                    timeout=(min(10.0, self.timeout), self.timeout), verify=self.validate_certs,
                )
            except requests.exceptions.SSLError as exc:
                raise self._error("TLS error talking to %s: %s (set validate_certs=false only for a "
                                  "test endpoint)" % (self.service_name, exc), method, path)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                sent = not isinstance(exc, requests.exceptions.ConnectTimeout)
                retry_ok = retry and (idempotent or not sent)
                delay = self.retry.next_delay(attempt, self._clock() - started) if retry_ok else None
                if delay is None:
                    raise self._error(
                        "%s %s %s: no answer (%s)%s" % (
                            self.service_name, method, path, _short(exc),
                            "" if idempotent else "; the write may or may not have been applied"),
                        method, path, outcome_unknown=not idempotent and sent)
                self._sleep(delay)
                continue

            if raw:
                return response
            if response.status_code in expected:
                return self._decode(response, method, path)

            body = self._decode(response, method, path, quiet=True)
            code, provider_message = self.parse_error(response.status_code, body)
            retry_ok = retry and response.status_code in RETRYABLE_STATUSES and (
                idempotent or response.status_code == 429)
            if retry_ok:
                delay = self.retry.next_delay(attempt, self._clock() - started,
                                              headers=response.headers)
                if delay is not None:
                    self._sleep(delay)
                    continue
            raise self._error(
                "%s %s %s failed: HTTP %s%s%s" % (
                    self.service_name, method, path, response.status_code,
                    " %s" % code if code else "",
                    ": %s" % provider_message if provider_message else ""),
                method, path, status=response.status_code, code=code,
                provider_message=provider_message,
                retry_after=self.retry.server_wait(response.headers),
                outcome_unknown=(not idempotent and response.status_code in (502, 504)),
                attempts=attempt)

    def _decode(self, response, method, path, quiet=False):
        """The JSON body, or None when empty; a non-JSON success is an error (redacted like any other)."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            if quiet:
                return response.text[:500]
            raise self._error("%s %s %s: expected JSON, got %r" % (
                self.service_name, method, path, response.text[:200]), method, path, status=response.status_code)

    def _error(self, message, method, path, attempts=None, **fields):
        if attempts and attempts > 1:
            message += " (after %d attempts)" % attempts
        if fields.get("provider_message") is not None:
            fields["provider_message"] = self.redact(fields["provider_message"])
        return ApiError(self.redact(message), method=method, path=self.redact(path), **fields)


def _short(exc):
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
