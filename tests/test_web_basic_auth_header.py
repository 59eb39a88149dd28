"""How BasicAuth reads the Authorization header (RFC 7617, RFC 7235's `Basic 1*SP token68`) and what
its verdict cache keeps: strict base64, a colon required, spaces after the scheme allowed."""

from __future__ import annotations

import base64

import bcrypt

from exporter.web.auth import BasicAuth


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_one_or_more_spaces_may_follow_the_scheme():
    auth = BasicAuth({"prometheus": hashed("secret")})
    token = encode(b"prometheus:secret")
    for header in (f"Basic {token}", f"Basic   {token}", f"BASIC {token}", f"Basic {token} "):
        assert auth.check(header), header


def test_characters_outside_base64_are_refused_not_skipped():
    auth = BasicAuth({"prometheus": hashed("secret")})
    token = encode(b"prometheus:secret")
    for header in (f"Basic {token[:4]}*{token[4:]}", f"Basic {token[:4]} {token[4:]}", f"Basic {token[:8]}\x00{token[8:]}"):
        assert not auth.check(header), header
        assert not auth.known_user(header), header


def test_a_header_without_a_colon_is_refused_even_for_an_empty_password():
    auth = BasicAuth({"prometheus": hashed("")})
    assert auth.check("Basic " + encode(b"prometheus:"))  # user, colon, empty password
    assert not auth.check("Basic " + encode(b"prometheus"))
    assert not auth.known_user("Basic " + encode(b"prometheus"))


def test_the_failures_cache_holds_exactly_its_size():
    auth = BasicAuth({"prometheus": hashed("secret")}, cache_size=2, good_cache_size=1)
    wrong = [f"Basic {encode(f'prometheus:wrong-{n}'.encode())}" for n in range(3)]
    for header in wrong:
        assert not auth.check(header)
    assert [auth.cached(header) for header in wrong] == [None, False, False]  # the oldest evicted
    good = "Basic " + encode(b"prometheus:secret")
    assert auth.check(good) and auth.cached(good) is True  # a cache of one holds one
