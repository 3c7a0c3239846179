"""The Redactor masks a secret in every form an echo can give it (issue 12, secrets scan)."""

import json
from urllib.parse import quote, quote_plus

import pytest

from ansible_collections.karto.supabase_mail.plugins.module_utils._secrets import REDACTED, Redactor, prefix_length

# What JSON and URLs escape: quote, backslash, plus, slash, percent, non-ASCII.
PASSWORD = 'Sc-"\\+/é%Zq81LmW0pT'
TOKEN = "sbp_" + "0123456789abcdef" * 2 + "01234567"
SECRET_KEY = "sb_secret_Ab3dEf6hIj9kLm2nOp5qRs_8tUv1wXyz"


@pytest.mark.parametrize("secret", [PASSWORD, TOKEN, SECRET_KEY])
@pytest.mark.parametrize("encode", [
    lambda s: s,
    lambda s: json.dumps(s)[1:-1],                                   # \uXXXX
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1],                 # escaped again
    lambda s: repr(s)[1:-1],
    lambda s: quote(s, safe=""),                                     # a form body or query echoed
    quote_plus,
], ids=["raw", "json", "json-unicode", "json-twice", "repr", "url", "url-plus"])
def test_every_encoding_is_masked_whole_and_as_a_prefix(secret, encode):
    redact = Redactor([secret])
    form = encode(secret)
    for shown in (form, form[:prefix_length(form)], form[:24]):
        text = redact("proxy echo: {%s}" % shown)
        assert shown not in text and REDACTED in text, (shown, text)


def test_a_prefix_counts_from_after_the_public_type_tag():
    # "sb_secret_" is the same for every key of its kind: naming the kind is no leak.
    redact = Redactor([SECRET_KEY])
    assert redact("pass a secret key (sb_secret_...)") == "pass a secret key (sb_secret_...)"
    assert REDACTED in redact("apikey: " + SECRET_KEY[:len("sb_secret_") + 8])
    assert prefix_length(PASSWORD) == len("Sc-") + 8 and prefix_length("plainpassword") == 8


def test_text_that_only_shares_fewer_characters_is_left_alone():
    redact = Redactor([PASSWORD])
    near = PASSWORD[:prefix_length(PASSWORD) - 1]
    assert redact("value %s!" % near) == "value %s!" % near
