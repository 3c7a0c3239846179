"""Retry policy, wait headers, redaction and the request loop of the shared HTTP client."""

import random

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils import _transport
from ansible_collections.karto.supabase_mail.plugins.module_utils._http import (
    USER_AGENT,
    ApiClient,
    NO_RETRY,
    ApiError,
    RetryPolicy,
    parse_wait_header,
)
from ansible_collections.karto.supabase_mail.plugins.module_utils._secrets import Redactor

NOW = 1_800_000_000.0


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0),
    ("0", 0.0),
    ("2.5", 2.5),
    (str(int(NOW) + 12), 12.0),          # epoch reset time
    (str(int(NOW) - 5), 0.0),            # already past
    ("soon", None),
    ("", None),
    (None, None),
])
def test_parse_wait_header(value, expected):
    assert parse_wait_header(value, now=NOW) == expected


def test_parse_wait_header_http_date():
    # 2027-01-15T08:00:10Z is epoch 1800000010.
    assert parse_wait_header("Fri, 15 Jan 2027 08:00:10 GMT", now=1800000000.0) == pytest.approx(10.0)


def test_server_wait_prefers_retry_after_then_reset_headers():
    headers = _transport.Headers([("x-ratelimit-reset", "9"), ("Retry-After", "3")])
    assert RetryPolicy.server_wait(headers, now=NOW) == 3.0
    headers = _transport.Headers([("ratelimit-reset", "4")])
    assert RetryPolicy.server_wait(headers, now=NOW) == 4.0


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(budget=100, base_delay=1, max_delay=8, rng=random.Random(1))
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 8)]:
        delay = policy.backoff(attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_next_delay_refuses_a_wait_beyond_the_budget():
    policy = RetryPolicy(budget=10, rng=random.Random(1))
    assert policy.next_delay(1, elapsed=0, headers={"Retry-After": "30"}) is None
    assert 2.0 < policy.next_delay(1, elapsed=0, headers={"Retry-After": "2"}) < 2.3
    assert policy.next_delay(1, elapsed=9.9) is None


def test_redactor_masks_every_secret_longest_first():
    redact = Redactor(["abc", "abcdef", None, ""])
    assert redact("token abcdef and abc") == "token ******** and ********"
    assert redact(None) is None


class FakeResponse:
    def __init__(self, status, body=None, headers=None):
        self.status_code = status
        self._body = body
        self.headers = _transport.Headers((headers or {}).items())
        self.content = b"" if body is None else b"x"
        self.url = "http://api.test/x"
        self.text = str(body)

    def json(self):
        if isinstance(self._body, str):
            raise ValueError("not json")
        return self._body


class FakeSession:
    """Answers from a script; records what was asked. Items are responses or exceptions, or
    (seconds, item): the answer takes that long on the clock, and a read timeout shorter than
    that ends the try with ReadTimeout after the read timeout."""

    def __init__(self, script, clock=None):
        self.script = list(script)
        self.calls = []
        self.headers = {}
        self.clock = clock

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        item = self.script.pop(0)
        if isinstance(item, tuple):
            seconds, item = item
            read_timeout = kwargs["timeout"][1]
            if seconds > read_timeout:
                self.clock.now += read_timeout
                raise _transport.ReadTimeout("read timed out")
            self.clock.now += seconds
        if isinstance(item, Exception):
            raise item
        return item


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self):
        return self.now


def make_client(script, budget=60, secrets=()):
    """A client with timeout 10; budget None keeps the default budget (2 x timeout = 20 s)."""
    clock = FakeClock()
    session = FakeSession(script, clock)
    client = ApiClient("http://api.test/", timeout=10, retry_budget=budget, secrets=secrets,
                       session=session, sleep=clock.sleep, clock=clock.monotonic)
    return client, session, clock


def test_user_agent_is_explicit():
    client, session, _clock = make_client([FakeResponse(200, {"ok": True})])
    assert client.request("GET", "/v1/x") == {"ok": True}
    assert session.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("karto.supabase_mail/")


def test_429_twice_then_success_honours_the_reset_header():
    client, session, clock = make_client([
        FakeResponse(429, {"message": "slow down"}, {"X-RateLimit-Reset": "2"}),
        FakeResponse(429, {"message": "slow down"}, {"X-RateLimit-Reset": "1"}),
        FakeResponse(200, {"ok": 1}),
    ])
    assert client.request("GET", "/v1/x") == {"ok": 1}
    assert len(session.calls) == 3
    assert 2.0 <= clock.sleeps[0] <= 2.3 and 1.0 <= clock.sleeps[1] <= 1.3


def test_5xx_forever_fails_inside_the_budget_naming_status_and_message():
    client, session, clock = make_client(
        [FakeResponse(503, {"message": "upstream down"})] * 100, budget=20)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1/x")
    assert clock.now <= 20
    assert caught.value.status == 503
    assert "HTTP 503" in str(caught.value) and "upstream down" in str(caught.value)
    assert len(session.calls) > 2


def test_4xx_is_not_retried_and_keeps_provider_code():
    client, session, _clock = make_client([FakeResponse(400, {"message": "smtp_port: bad", "code": "E1"})])
    with pytest.raises(ApiError) as caught:
        client.request("PATCH", "/v1/x", json_body={"a": 1})
    assert len(session.calls) == 1
    assert (caught.value.status, caught.value.code, caught.value.provider_message) == (400, "E1", "smtp_port: bad")


def test_dropped_connection_retried_for_idempotent_requests():
    client, session, _clock = make_client([_transport.ConnectionLost("reset"), FakeResponse(200, {})])
    assert client.request("PATCH", "/v1/x", json_body={}) == {}
    assert len(session.calls) == 2


def test_lost_answer_to_a_create_is_not_retried_and_says_outcome_unknown():
    client, session, _clock = make_client([_transport.ReadTimeout("read timed out"), FakeResponse(200, {})])
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/v3/users/smtp/add", json_body={}, idempotent=False)
    assert len(session.calls) == 1
    assert caught.value.outcome_unknown is True


def test_create_refused_with_429_is_retried():
    client, session, _clock = make_client([FakeResponse(429, {}, {"Retry-After": "1"}), FakeResponse(200, {"id": 1})])
    assert client.request("POST", "/v3/add", json_body={}, idempotent=False) == {"id": 1}
    assert len(session.calls) == 2


def test_create_answered_503_is_not_retried():
    client, session, _clock = make_client([FakeResponse(503, {}), FakeResponse(200, {})])
    with pytest.raises(ApiError):
        client.request("POST", "/v3/add", json_body={}, idempotent=False)
    assert len(session.calls) == 1


def test_error_text_redacts_secrets_echoed_by_the_provider():
    secret = "s3cret-value-123"
    client, _session, _clock = make_client([FakeResponse(400, {"message": "bad password %s" % secret})], secrets=[secret])
    with pytest.raises(ApiError) as caught:
        client.request("PATCH", "/v1/x", json_body={"smtp_pass": secret})
    assert secret not in str(caught.value)
    assert secret not in caught.value.provider_message


def test_non_json_success_is_an_error_without_the_secret():
    secret = "tok-3c1e9f"
    client, _session, _clock = make_client([FakeResponse(200, "<html>%s</html>" % secret)], secrets=[secret])
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1/x")
    assert "expected JSON" in str(caught.value) and secret not in str(caught.value)


def test_503_carrying_a_rate_limit_reset_is_retried_with_backoff_not_given_up():
    # Supabase sends X-RateLimit-Reset (60 s windows) on every answer: it says nothing about a 503.
    client, session, clock = make_client([
        FakeResponse(503, {"message": "upstream down"}, {"X-RateLimit-Reset": "60", "X-RateLimit-Remaining": "119"}),
        FakeResponse(200, {"ok": 1}),
    ], budget=None)
    assert client.request("GET", "/v1/x") == {"ok": 1}
    assert len(session.calls) == 2
    assert clock.sleeps and clock.sleeps[0] <= 1.0  # the first backoff step, not 60 s
    assert clock.now <= 20


@pytest.mark.parametrize("status", [502, 504])
def test_other_5xx_ignore_wait_headers_too(status):
    client, session, clock = make_client([
        FakeResponse(status, {}, {"Retry-After": "45"}),
        FakeResponse(200, {"ok": 1}),
    ], budget=None)
    assert client.request("GET", "/v1/x") == {"ok": 1}
    assert clock.sleeps[0] <= 1.0


def test_429_wait_beyond_the_budget_gives_up_at_once_naming_the_wait():
    client, session, clock = make_client([FakeResponse(429, {"message": "slow down"}, {"X-RateLimit-Reset": "60"})],
                                         budget=None)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1/x")
    assert len(session.calls) == 1 and clock.sleeps == []
    assert caught.value.status == 429 and caught.value.retry_after == 60.0


def test_503_error_does_not_report_a_rate_limit_reset_as_retry_after():
    client, _session, _clock = make_client([FakeResponse(503, {}, {"X-RateLimit-Reset": "60"})] * 50, budget=None)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1/x")
    assert caught.value.status == 503 and caught.value.retry_after is None


def test_timed_out_tries_stay_within_the_budget():
    # timeout 10, budget 20: the last try may only wait for what is left of the budget.
    client, session, clock = make_client([(60, FakeResponse(200, {}))] * 10, budget=None)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1/x")
    assert clock.now <= 20.0
    assert len(session.calls) == 2
    read_timeouts = [call[2]["timeout"][1] for call in session.calls]
    assert read_timeouts[0] == 10 and read_timeouts[1] < 10
    assert "no answer" in str(caught.value)


def test_slow_5xx_answers_never_run_the_request_past_the_budget():
    # Each 503 takes 9 s: the third try would run to ~28 s with a full 10 s read timeout.
    client, session, clock = make_client([(9, FakeResponse(503, {}))] * 10, budget=None)
    with pytest.raises(ApiError):
        client.request("GET", "/v1/x")
    assert clock.now <= 20.0
    for _method, _url, kwargs in session.calls:
        connect_timeout, read_timeout = kwargs["timeout"]
        assert connect_timeout <= read_timeout <= 10


def test_each_try_waits_at_most_the_budget_left():
    client, session, clock = make_client([(9.9, FakeResponse(503, {})), (1, FakeResponse(200, {"ok": 1}))],
                                         budget=None)
    assert client.request("GET", "/v1/x") == {"ok": 1}
    _method, _url, kwargs = session.calls[1]
    assert kwargs["timeout"][1] == pytest.approx(20 - 9.9 - clock.sleeps[0])


def test_lost_answer_to_a_create_says_outcome_unknown_after_a_timeout():
    client, session, _clock = make_client([(60, FakeResponse(200, {}))], budget=None)
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/v3/add", json_body={}, idempotent=False)
    assert len(session.calls) == 1 and caught.value.outcome_unknown is True


class WaitHookClient(ApiClient):
    """A provider whose 429 body names the wait, and whose other 429s cannot be waited out."""

    def retry_wait(self, status, headers, body):
        if isinstance(body, dict) and body.get("wait") is not None:
            return float(body["wait"])
        return NO_RETRY


def make_hook_client(script, rate_limit_wait=None, budget=None):
    clock = FakeClock()
    session = FakeSession(script, clock)
    client = WaitHookClient("http://api.test/", timeout=10, retry_budget=budget, rate_limit_wait=rate_limit_wait,
                            session=session, sleep=clock.sleep, clock=clock.monotonic)
    return client, session, clock


def test_client_hook_names_the_429_wait_and_the_loop_waits_it():
    client, session, clock = make_hook_client([FakeResponse(429, {"wait": 3}), FakeResponse(200, {"sent": 1})])
    assert client.request("POST", "/send", json_body={}, idempotent=False) == {"sent": 1}
    assert len(session.calls) == 2
    assert 3.0 <= clock.sleeps[0] <= 3.3


def test_client_hook_can_refuse_to_retry_a_429():
    client, session, clock = make_hook_client([FakeResponse(429, {"msg": "hourly limit"}), FakeResponse(200, {})])
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/send", json_body={}, idempotent=False)
    assert len(session.calls) == 1 and clock.sleeps == []
    assert caught.value.status == 429 and caught.value.retry_after is None


def test_rate_limit_wait_allows_a_429_wait_longer_than_the_budget_and_bounds_it():
    # budget 20 (timeout 10) but rate_limit_wait 65: a 40 s wait is taken, the try after it has its full timeout.
    client, session, clock = make_hook_client([FakeResponse(429, {"wait": 40}), FakeResponse(200, {"sent": 1})],
                                              rate_limit_wait=65)
    assert client.request("POST", "/send", json_body={}, idempotent=False) == {"sent": 1}
    assert 40 <= clock.sleeps[0] <= 40.3
    assert session.calls[1][2]["timeout"][1] == 10
    client, session, clock = make_hook_client([FakeResponse(429, {"wait": 70}), FakeResponse(200, {})],
                                              rate_limit_wait=65)
    with pytest.raises(ApiError) as caught:
        client.request("POST", "/send", json_body={}, idempotent=False)
    assert len(session.calls) == 1 and clock.sleeps == []
    assert caught.value.retry_after == 70.0


def test_rate_limit_wait_zero_never_waits():
    client, session, clock = make_hook_client([FakeResponse(429, {"wait": 1}), FakeResponse(200, {})],
                                              rate_limit_wait=0)
    with pytest.raises(ApiError):
        client.request("POST", "/send", json_body={}, idempotent=False)
    assert len(session.calls) == 1 and clock.sleeps == []


# --- what an unanswered or 5xx request tells the caller (issue 12's fault matrix) -----------------------

def test_a_timed_out_create_says_so_and_a_dropped_one_does_not():
    # A timeout may still land on the server; a closed connection is over: the write engine keeps
    # looking for the first only.
    client, _session, _clock = make_client([(60, FakeResponse(200, {}))], budget=None)
    with pytest.raises(ApiError) as timed_out:
        client.request("POST", "/v3/add", json_body={}, idempotent=False)
    client, _session, _clock = make_client([_transport.ConnectionLost("reset by peer")])
    with pytest.raises(ApiError) as dropped:
        client.request("POST", "/v3/add", json_body={}, idempotent=False)
    assert timed_out.value.timed_out is True and timed_out.value.outcome_unknown is True
    assert dropped.value.timed_out is False and dropped.value.outcome_unknown is True
    assert "may or may not have been applied" in dropped.value.message


def test_no_answer_to_a_read_says_what_to_do():
    client, _session, _clock = make_client([_transport.ConnectionLost("reset by peer")] * 50, budget=None)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/v1/x")
    assert caught.value.message.startswith("API GET /v1/x: no answer")
    assert "check that api_url is reachable from this machine, or raise timeout, and run the task again" \
        in caught.value.message
    assert "(after " in caught.value.message  # the tries are counted before the advice


@pytest.mark.parametrize("method, idempotent, status, advice", [
    ("GET", None, 503, "server error on every try: run the task again in a few minutes"),
    ("GET", None, 500, "server error on every try: run the task again in a few minutes"),
    ("POST", False, 500, "the write was not retried (repeating it blindly could apply it twice): run the task "
                         "again in a few minutes"),
    ("POST", False, 503, "the write was not retried"),
    # A create answered 502 or 504 may have landed: the caller re-reads and says what to do.
    ("POST", False, 502, None),
    ("POST", False, 504, None),
    ("GET", None, 404, None),
])
def test_a_server_error_says_what_to_do(method, idempotent, status, advice):
    client, _session, _clock = make_client([FakeResponse(status, {"message": "boom"})] * 50, budget=None)
    with pytest.raises(ApiError) as caught:
        client.request(method, "/v1/x", idempotent=idempotent)
    assert ("HTTP %d: boom" % status) in caught.value.message
    if advice:
        assert advice in caught.value.message and caught.value.message.endswith("in a few minutes")
    else:
        assert "run the task again" not in caught.value.message
    assert caught.value.outcome_unknown is (status in (502, 504) and idempotent is False)
