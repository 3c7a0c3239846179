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
from ansible_collections.karto.supabase_mail.plugins.module_utils._version import COLLECTION_VERSION

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport

USER_AGENT = "karto.supabase_mail/%s" % COLLECTION_VERSION

# Statuses that mean "not processed, try later" or "a proxy lost the answer".
RETRYABLE_STATUSES = (429, 502, 503, 504)
# Rate-limit headers, most explicit first. Values are seconds to wait, or an epoch time.
# They are read on a 429 only: Supabase sends X-RateLimit-Reset (its 60 s window) on every
# answer, so on a 5xx it says nothing about when the server will be back.
WAIT_HEADERS = ("Retry-After", "X-RateLimit-Reset", "RateLimit-Reset")
# What ApiClient.retry_wait returns for a 429 that waiting (within a run) cannot cure.
NO_RETRY = -1.0
# Longest wait for a TCP connect; a try is not started with less than MIN_TRY_SECONDS left.
CONNECT_TIMEOUT = 10.0
MIN_TRY_SECONDS = 1.0
# What to do when no try got an answer (a write whose answer was lost is settled by its caller).
NO_ANSWER_ADVICE = "; check that %s is reachable from this machine, or raise timeout, and run the task again"
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
                 method=None, path=None, outcome_unknown=False, retry_after=None, request_id=None,
                 timed_out=False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.provider_message = provider_message
        self.method = method
        self.path = path
        # True when a non-idempotent write may or may not have been applied: re-read first.
        self.outcome_unknown = outcome_unknown
        # Seconds a 429 asked to wait (None for any other status, or when it named none).
        self.retry_after = retry_after
        # The provider's ID of the failed request, to find its log line (see ApiClient.error_request_id).
        self.request_id = request_id
        # True when the last try got no answer in time: the server may still be working on it, so a
        # write it carried may land later (a dropped connection, by contrast, is over).
        self.timed_out = timed_out

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


def server_error_advice(status, idempotent):
    """What to do after a 5xx the retries did not cure: a server error is the provider's, so the
    only cure is a later run. A write answered 502 or 504 may have been applied (a proxy lost the
    answer): its caller re-reads and says what to do, so nothing is added."""
    if status is None or status < 500 or (not idempotent and status in (502, 504)):
        return ""
    if idempotent:
        return "; the service had a server error on every try: run the task again in a few minutes"
    return ("; the service had a server error and the write was not retried (repeating it blindly could apply "
            "it twice): run the task again in a few minutes")


class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a total time budget.

    A server-named wait (a 429's Retry-After or rate-limit reset) replaces the backoff step; if it
    does not fit in what is left of the budget the caller gives up at once rather than sleep in
    vain. With `max_server_wait` set, a server-named wait up to that long is allowed even beyond
    the budget, and the time slept on it is not charged to the budget (see ApiClient).
    """

    def __init__(self, budget=60.0, base_delay=0.5, max_delay=20.0, rng=None, max_server_wait=None):
        self.budget = float(budget)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.max_server_wait = None if max_server_wait is None else float(max_server_wait)
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

    def next_delay(self, attempt, elapsed, headers=None, now=None, wait=None):
        """Seconds to sleep before the next try, or None when the budget forbids another try.

        `wait` is a server-named wait in seconds (else read from `headers`; pass headers of a
        429 only); without one the jittered backoff applies.
        """
        remaining = self.budget - elapsed
        if wait is None:
            wait = self.server_wait(headers, now=now)
        if wait is None:
            wanted = self.backoff(attempt)
        elif self.max_server_wait is not None:
            if wait > self.max_server_wait:
                return None
            # Slept outside the budget; the try after it still needs time inside it.
            return wait + self._rng.uniform(0.05, 0.25) if remaining >= MIN_TRY_SECONDS else None
        else:
            # A reset of "0" still needs a breath, and jitter spreads parallel workers.
            wanted = wait + self._rng.uniform(0.05, 0.25)
        if wanted + MIN_TRY_SECONDS > remaining:
            return None
        return wanted


class ApiClient:
    """Shared JSON-over-HTTPS client: auth header, User-Agent, timeouts, retries, errors.

    Provider clients subclass it, set `service_name`, and implement `auth_headers()` and
    `parse_error(status, body)` returning (code, message).
    """

    service_name = "API"
    # The module option holding base_url, so an unusable URL is named in the user's words.
    url_option = "api_url"

    def __init__(self, base_url, timeout=30, validate_certs=True, retry_budget=None,
                 secrets=(), session=None, sleep=time.sleep, clock=time.monotonic, rate_limit_wait=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.validate_certs = validate_certs
        self.redact = Redactor(secrets)
        # All tries of one request, and the backoff between them, fit in the budget. A 429's
        # server-named wait of up to `rate_limit_wait` seconds is slept outside it (None: a
        # server-named wait must fit in the budget too).
        budget = retry_budget if retry_budget is not None else self.timeout * 2
        self.retry = RetryPolicy(budget=budget, max_server_wait=rate_limit_wait)
        self.session = session or _transport.Session()
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

    def retry_wait(self, status, headers, body):
        """Seconds a 429 asks to wait before the retry: None when it names none (the jittered
        backoff applies), NO_RETRY when no wait within this run can cure it. Called for 429 only.
        The default reads the rate-limit headers; a provider that names the wait in its body
        overrides it."""
        return RetryPolicy.server_wait(headers)

    def error_request_id(self, status, headers, body):
        """The provider's ID of a failed request, to find it in the provider's logs, or None."""
        return None

    # --- the request loop -------------------------------------------------
    def request(self, method, path, json_body=None, params=None, idempotent=None,
                expected=(200, 201, 204), retry=True, extra_headers=None, raw=False):
        """Send one logical request and return the decoded JSON body (or None).

        `idempotent` defaults from the method. A non-idempotent request is retried only when
        the server certainly did not process it (429); on a lost answer it raises ApiError with
        outcome_unknown=True so the caller can re-read instead of creating twice.
        A 429 waits what `retry_wait` names (or the backoff); a 5xx or a dropped connection
        always takes the jittered backoff. All tries fit in the retry budget (2 x timeout).
        `retry=False` sends once, for callers that must see a 429 themselves. `raw=True` returns
        the transport's Response (status_code, headers, content, text, json()) for any status
        instead of decoding or raising.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS")
        url = self.base_url + path
        started = self._clock()
        # Time slept on server-named 429 waits allowed by rate_limit_wait: not charged to the budget.
        excused = 0.0
        attempt = 0
        while True:
            attempt += 1
            headers = self.auth_headers()
            if attempt == 1:
                # Whatever a client authenticates with is masked, even if it forgot to name it a secret.
                for value in headers.values():
                    self.redact.add(str(value))
                    if " " in str(value):
                        self.redact.add(str(value).split(" ", 1)[1])
            headers.update(extra_headers or {})
            # The last try only waits for what is left of the budget: all tries fit in it.
            left = max(MIN_TRY_SECONDS, self.retry.budget - (self._clock() - started - excused))
            read_timeout = min(self.timeout, left)
            try:
                self.requests_sent += 1
                response = self.session.request(
                    method, url, json=json_body, params=params, headers=headers,
                    timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout), verify=self.validate_certs,
                )
            except _transport.TlsError as exc:
                raise self._error(self._tls_message(exc), method, path)
            except _transport.InvalidUrl as exc:
                raise self._error("%s must be an http:// or https:// URL such as https://api.example.com; %s "
                                  "could not be used (%s)." % (self.url_option, self.base_url, _short(exc)),
                                  method, path)
            except (_transport.ConnectFailed, _transport.ConnectionLost, _transport.ReadTimeout) as exc:
                # Refused or timed out while connecting: nothing was sent, so even a write may be retried.
                sent = exc.sent
                retry_ok = retry and (idempotent or not sent)
                delay = self.retry.next_delay(attempt, self._clock() - started - excused) if retry_ok else None
                if delay is None:
                    raise self._error(
                        "%s %s %s: no answer (%s)%s" % (
                            self.service_name, method, path, _short(exc),
                            "; the write may or may not have been applied" if not idempotent and sent else ""),
                        method, path, outcome_unknown=not idempotent and sent, attempts=attempt,
                        advice="" if not idempotent and sent else NO_ANSWER_ADVICE % self.url_option,
                        timed_out=isinstance(exc, _transport.ReadTimeout))
                self._sleep(delay)
                continue
            except (_transport.InvalidHeader, ValueError) as exc:
                # Nothing was sent: a header value with a line break (a key pasted with a newline) or
                # a body JSON cannot carry. The transport never quotes a header; redacted all the same.
                raise self._error("%s %s %s was not sent: %s. Check the API key or token for whitespace or "
                                  "line breaks, and %s." % (self.service_name, method, path, _short(exc),
                                                            self.url_option), method, path)

            if raw:
                return response
            if response.status_code in expected:
                return self._decode(response, method, path)

            body = self._decode(response, method, path, quiet=True)
            code, provider_message = self.parse_error(response.status_code, body)
            status = response.status_code
            # A 429 was not processed: safe to retry even for a write. A 5xx is retried (with the
            # jittered backoff, whatever its headers say) only when repeating it is harmless.
            server_wait = self.retry_wait(status, response.headers, body) if status == 429 else None
            retry_ok = retry and status in RETRYABLE_STATUSES and (idempotent or status == 429) and (
                server_wait != NO_RETRY)
            if retry_ok:
                delay = self.retry.next_delay(attempt, self._clock() - started - excused, wait=server_wait)
                if delay is not None:
                    if server_wait is not None and self.retry.max_server_wait is not None:
                        excused += delay
                    self._sleep(delay)
                    continue
            raise self._error(
                "%s %s %s failed: HTTP %s%s%s" % (
                    self.service_name, method, path, response.status_code,
                    " %s" % code if code else "",
                    ": %s" % provider_message if provider_message else ""),
                method, path, status=response.status_code, code=code,
                provider_message=provider_message,
                retry_after=server_wait if server_wait != NO_RETRY else None,
                request_id=self.error_request_id(status, response.headers, body),
                outcome_unknown=(not idempotent and status in (502, 504)),
                attempts=attempt, advice=server_error_advice(status, idempotent))

    def _tls_message(self, exc):
        """A certificate problem, or an https URL pointing at a port that does not speak TLS."""
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "hostname" in text:
            return ("TLS certificate of %s not accepted (%s): fix the certificate or trust its CA; set "
                    "validate_certs=false only for a test endpoint." % (self.service_name, _short(_tls_reason(text))))
        return ("TLS handshake with %s at %s failed (%s): %s is https:// but the port may not speak TLS; use the "
                "endpoint's https port, or http:// for a plain local test endpoint."
                % (self.service_name, self.base_url, _short(_tls_reason(text)), self.url_option))

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

    def _error(self, message, method, path, attempts=None, advice="", **fields):
        if attempts and attempts > 1:
            message += " (after %d attempts)" % attempts
        message += advice
        # Every text field a provider filled may echo the request (a proxy's error page does).
        for name in ("provider_message", "code", "request_id"):
            if isinstance(fields.get(name), str):
                fields[name] = self.redact(fields[name])
        return ApiError(self.redact(message), method=method, path=self.redact(path), **fields)


def _tls_reason(text):
    """The OpenSSL reason inside urllib3's nested error text, e.g. "WRONG_VERSION_NUMBER"."""
    start = text.rfind("[SSL")
    if start >= 0:
        end = text.find("]", start)
        return text[start + 1:end] if end > start else text[start:]
    return text


def _short(exc):
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
