"""Token keeping to the exact second: when a token is renewed and counted expired, when a failed
renewal is tried again, how the credential backoff doubles, caps and resets, and the log events
and error messages operators read.

The client talks to the fake Crossbar over loopback HTTP. The keeper's clocks (`auth.monotonic`,
`auth.wall_clock`) are frozen and moved by the test, and the fake issues tokens with whole-second
`iat`/`exp`, so that every boundary (`>=` against `>`) is hit exactly, whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

import pytest

from exporter.kazoo import CredentialError, Credentials, ServerError
from exporter.kazoo import auth as kazoo_auth

from .conftest import Harness
from .fake_crossbar import ACCOUNT_NAME, API_KEY, OTHER, PASSWORD, USERNAME, error_answer, make_jwt

T0 = 1000.0  # the frozen monotonic clock at the start of each test
LISTING = f"GET /v2/accounts/{OTHER}/qubicle_queues"
REJECTED_KEY = "PUT /v2/api_auth: Kazoo rejected the API key (HTTP 404)"
REJECTED_USER = "PUT /v2/user_auth: Kazoo rejected the user credentials (HTTP 401)"
Events = list[MutableMapping[str, Any]]


class FrozenClock:
    """The keeper's two clocks, moved only by `at()`. `wall` is our Unix time; `skew` puts it ahead
    of the Kazoo that issues the tokens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = T0
        self.issuer_time = int(time.time())  # Kazoo's `iat` for every token (whole seconds)
        self.skew = 0.0
        monkeypatch.setattr(kazoo_auth, "monotonic", lambda: self.now)
        monkeypatch.setattr(kazoo_auth, "wall_clock", lambda: self.issuer_time + self.skew)

    def at(self, seconds: float) -> None:
        self.now = T0 + seconds


@pytest.fixture
def clock(kazoo: Harness, monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock(monkeypatch)
    crossbar = kazoo.crossbar

    def issue() -> str:  # FakeCrossbar.issue with whole seconds: exp - iat is exactly token_ttl
        iat = frozen.issuer_time
        token = make_jwt(iat + crossbar.token_ttl, len(crossbar.issued), iat=iat if crossbar.issue_iat else None)
        crossbar.valid.add(token)
        crossbar.issued.append(token)
        crossbar.secrets_seen.add(token)
        return token

    monkeypatch.setattr(crossbar, "issue", issue)
    return frozen


def events(logs: Events, name: str) -> list[dict[str, Any]]:
    return [dict(e) for e in logs if e["event"] == name]


async def _deny(request: Any) -> Any:
    return error_answer(401, request)


# ---- renewal and expiry boundaries -----------------------------------------------------------------

@pytest.mark.parametrize("with_iat, renew_at", [
    (True, 3540.0),   # exp - iat = 3600 whatever our clock says (it is 500 s ahead here)
    (False, 3040.0),  # no iat: exp - our wall clock = 3100
])
async def test_renewal_is_due_at_exactly_renew_before_ahead_of_exp(kazoo, clock, with_iat, renew_at):
    kazoo.crossbar.issue_iat = with_iat
    clock.skew = 500.0
    client = kazoo.client(renew_before=60)
    await client.list_queues(OTHER)
    clock.at(renew_at - 0.001)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 1
    clock.at(renew_at)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[1]
    assert kazoo.reauths == 0 and "401" not in kazoo.codes("queues")


async def test_a_token_whose_iat_equals_its_exp_falls_back_to_our_clock(kazoo, clock):
    # iat == exp is no lifetime at all: exp - (our wall clock) decides (here 100 s left).
    kazoo.crossbar.token_ttl = 0
    clock.issuer_time += 1000  # an exp in the future, or the fake refuses the token
    clock.skew = -100.0
    client = kazoo.client(renew_before=60)
    await client.list_queues(OTHER)
    clock.at(49.999)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 1
    clock.at(50)  # max(100 - 60, 100 / 2, 10)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2


def test_token_lifetime_boundaries():
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1, iat=5000), now=4000) == 1000  # iat == exp: our clock
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1, iat=4999), now=9999) == 1
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1), now=5000) is None  # exactly expired: rely on 401
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1), now=4999) == 1
    assert kazoo_auth.token_lifetime("x.e30.y", now=0) is None  # a JWT without exp


async def test_a_failed_renewal_keeps_the_token_until_exactly_its_exp(kazoo, clock, captured_logs):
    client = kazoo.client(renew_before=60, retries=0)
    await client.list_queues(OTHER)
    kazoo.crossbar.script["api_auth"] = [error_answer(503), error_answer(503)]
    clock.at(3599)  # one second left: tried again after max(1 s, a quarter of it)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[0]
    clock.at(3599.999)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2
    clock.at(3600)  # exp: the token is no longer worth keeping, the failure is the caller's
    error = await kazoo.fails(client.list_queues(OTHER), ServerError)
    assert str(error) == "PUT /v2/api_auth: HTTP 503"
    assert kazoo.crossbar.count("api_auth") == 3
    assert [e["expires_in"] for e in events(captured_logs, "kazoo_token_renewal_failed")] == [1.0]


async def test_a_failed_renewal_is_tried_again_after_a_quarter_of_the_time_left(kazoo, clock, captured_logs):
    client = kazoo.client(renew_before=60, retries=0)
    await client.list_queues(OTHER)
    kazoo.crossbar.script["api_auth"] = [error_answer(503)]
    clock.at(3540.25)  # due; 59.75 s left
    await client.list_queues(OTHER)
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[0]
    assert events(captured_logs, "kazoo_token_renewal_failed") == [{
        "event": "kazoo_token_renewal_failed", "log_level": "warning", "reason": "server_error",
        "error": "PUT /v2/api_auth: HTTP 503", "expires_in": 59.8}]
    clock.at(3540.25 + 59.75 / 4 - 0.001)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2
    clock.at(3540.25 + 59.75 / 4)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 3
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[1]
    assert kazoo.reauths == 0  # a renewal is not a re-authentication


async def test_callers_waiting_on_a_failed_renewal_keep_the_token_without_trying_again(kazoo, clock):
    client = kazoo.client(renew_before=60, retries=0)
    await client.list_queues(OTHER)
    kazoo.crossbar.script["api_auth"] = [error_answer(503) for _ in range(10)]
    kazoo.crossbar.auth_delay = 0.05
    clock.at(3540)
    results = await asyncio.gather(*(client.list_queues(OTHER) for _ in range(10)))
    assert all(results)
    assert kazoo.crossbar.count("api_auth") == 2  # one renewal attempt for all ten callers
    assert {r.token for r in kazoo.crossbar.requests("queues")} == {kazoo.crossbar.issued[0]}


async def test_a_reauthentication_that_fails_for_a_passing_reason_is_that_failure(kazoo, clock, captured_logs):
    # After a 401 the held token is known bad: a 5xx from the authentication is the caller's error
    # (reason server_error), not "keep the token" as for a renewal before exp.
    client = kazoo.client(retries=0)
    await client.list_queues(OTHER)
    kazoo.crossbar.expire_all()
    kazoo.crossbar.script["api_auth"] = [error_answer(503)]
    error = await kazoo.fails(client.list_queues(OTHER), ServerError)
    assert str(error) == "PUT /v2/api_auth: HTTP 503"
    assert kazoo.codes("queues")[-1] == "401" and len(kazoo.crossbar.requests("queues")) == 2
    assert events(captured_logs, "kazoo_token_renewal_failed") == []
    assert await client.list_queues(OTHER)  # Kazoo is back: the next 401 re-authenticates
    assert kazoo.crossbar.count("api_auth") == 3 and kazoo.reauths == 1


async def test_callers_with_a_valid_token_do_not_queue_behind_a_reauthentication(kazoo):
    # Single flight holds only the callers that saw the token fail: while one 401's
    # re-authentication hangs, a caller whose token is fine goes straight to Kazoo.
    client = kazoo.client()
    await client.list_queues(OTHER)
    release = asyncio.Event()

    async def slow_auth(request: Any) -> Any:
        await release.wait()
        return await kazoo.crossbar.api_auth(request)

    kazoo.crossbar.script["queues"] = [_deny]
    kazoo.crossbar.script["api_auth"] = [slow_auth]
    refused = asyncio.create_task(client.list_queues(OTHER))
    deadline = time.monotonic() + 30
    while kazoo.crossbar.count("api_auth") < 2:
        assert time.monotonic() < deadline, f"no re-authentication started; requests: {kazoo.events}"
        await asyncio.sleep(0.01)
    other = asyncio.create_task(client.list_queues(OTHER))
    done, _ = await asyncio.wait({other}, timeout=30)
    assert done, "a caller with a valid token waited for another caller's re-authentication"
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[0]
    release.set()
    assert await refused
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[1]


# ---- rejected credentials: the gate ----------------------------------------------------------------

async def test_credential_backoff_doubles_up_to_its_maximum_to_the_second(kazoo, clock, captured_logs):
    kazoo.crossbar.reject_auth = True
    client = kazoo.client(credential_backoff=60, credential_backoff_max=100)
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == REJECTED_KEY
    clock.at(0.5)
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{REJECTED_KEY}; not authenticating again for 60s"  # 59.5 s, rounded up
    clock.at(59.999)
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{REJECTED_KEY}; not authenticating again for 1s"
    assert kazoo.crossbar.count("api_auth") == 1
    clock.at(60)  # open again at exactly the backoff
    await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 2
    clock.at(159.999)  # 120 s, capped at 100
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{REJECTED_KEY}; not authenticating again for 1s"
    clock.at(160)
    await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 3
    assert events(captured_logs, "kazoo_credential_rejected") == [
        {"event": "kazoo_credential_rejected", "log_level": "warning", "endpoint": "api_auth",
         "reason": REJECTED_KEY, "retry_in": backoff} for backoff in (60, 100, 100)]


async def test_a_success_resets_the_credential_backoff(kazoo, clock, captured_logs):
    kazoo.crossbar.reject_auth = True
    client = kazoo.client(credential_backoff=60, credential_backoff_max=900)
    await kazoo.fails(client.list_queues(OTHER), CredentialError)
    clock.at(60)
    await kazoo.fails(client.list_queues(OTHER), CredentialError)  # backoff now 120 s
    kazoo.crossbar.reject_auth = False  # the operator fixed the key
    clock.at(180)
    assert await client.list_queues(OTHER)
    # The key is revoked again later: the backoff starts over at 60 s, not at 240 s.
    kazoo.crossbar.reject_auth = True
    kazoo.crossbar.expire_all()
    clock.at(200)
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{LISTING}: HTTP 401; {REJECTED_KEY}"
    clock.at(259.999)
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{REJECTED_KEY}; not authenticating again for 1s"
    assert kazoo.crossbar.count("api_auth") == 4
    assert [e["retry_in"] for e in events(captured_logs, "kazoo_credential_rejected")] == [60, 120, 60]
    assert events(captured_logs, "kazoo_reauthenticated") == []  # the re-authentication failed


async def test_rejected_user_credentials_are_logged_with_their_endpoint(kazoo, clock, captured_logs):
    client = kazoo.client(Credentials(username=USERNAME, password="wrong-password", account_name=ACCOUNT_NAME),
                          credential_backoff=30)
    await kazoo.fails(client.authenticate(), CredentialError)
    clock.at(1)
    error = await kazoo.fails(client.authenticate(), CredentialError)
    assert str(error) == f"{REJECTED_USER}; not authenticating again for 29s"
    assert events(captured_logs, "kazoo_credential_rejected") == [
        {"event": "kazoo_credential_rejected", "log_level": "warning", "endpoint": "user_auth",
         "reason": REJECTED_USER, "retry_in": 30}]


# ---- re-authentication and refused fresh tokens ----------------------------------------------------

@pytest.mark.parametrize("credentials, endpoint", [
    (Credentials(api_key=API_KEY), "api_auth"),
    (Credentials(username=USERNAME, password=PASSWORD, account_name=ACCOUNT_NAME), "user_auth"),
])
async def test_a_reauthentication_is_logged_with_its_endpoint(kazoo, captured_logs, credentials, endpoint):
    client = kazoo.client(credentials)
    await client.list_queues(OTHER)
    assert events(captured_logs, "kazoo_reauthenticated") == []  # the first one is no RE-authentication
    kazoo.crossbar.expire_all()
    await client.list_queues(OTHER)
    assert events(captured_logs, "kazoo_reauthenticated") == [
        {"event": "kazoo_reauthenticated", "log_level": "info", "endpoint": endpoint}]
    assert kazoo.reauths == 1


async def test_a_refused_fresh_token_is_logged_and_closes_reauthentication_to_the_second(kazoo, clock, captured_logs):
    client = kazoo.client(credential_backoff=60, credential_backoff_max=900)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [_deny, _deny]
    refused = f"{LISTING}: HTTP 401 again with a token just issued"
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == refused
    assert events(captured_logs, "kazoo_fresh_token_refused") == [
        {"event": "kazoo_fresh_token_refused", "log_level": "warning", "reason": refused, "generation": 2,
         "retry_in": 60}]
    kazoo.crossbar.script["queues"] = [_deny, _deny]
    clock.at(0.5)
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{LISTING}: HTTP 401; {refused}; not authenticating again for 60s"
    kazoo.crossbar.script["queues"] = [_deny, _deny]
    clock.at(60)  # open again: one re-authentication, its token refused too: the backoff doubles
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == refused
    assert kazoo.crossbar.count("api_auth") == 3
    assert [(e["generation"], e["retry_in"]) for e in events(captured_logs, "kazoo_fresh_token_refused")] == [
        (2, 60), (3, 120)]
    assert events(captured_logs, "kazoo_token_expired_early") == []
    assert kazoo.token_refusals == 2


async def test_a_success_while_reauthentication_is_closed_does_not_reopen_it(kazoo, clock):
    client = kazoo.client(credential_backoff=60)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [_deny, _deny]
    await kazoo.fails(client.list_queues(OTHER), CredentialError)  # closed until 60 s
    clock.at(10)
    assert await client.list_queues(OTHER)  # the kept token works for this request...
    kazoo.crossbar.script["queues"] = [_deny]
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)  # ...but the gate stays shut
    assert str(error).endswith("not authenticating again for 50s")
    assert kazoo.crossbar.count("api_auth") == 2


async def test_a_success_once_reauthentication_reopened_resets_its_backoff(kazoo, clock, captured_logs):
    client = kazoo.client(credential_backoff=60)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [_deny, _deny]
    await kazoo.fails(client.list_queues(OTHER), CredentialError)  # next backoff: 120 s
    clock.at(60)  # exactly reopened: a success now proves fresh tokens work again
    assert await client.list_queues(OTHER)
    kazoo.crossbar.script["queues"] = [_deny, _deny]
    await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert [e["retry_in"] for e in events(captured_logs, "kazoo_fresh_token_refused")] == [60, 60]


async def test_a_token_that_worked_and_was_then_refused_is_logged_as_expired_early(captured_logs):
    issued: list[str] = []

    async def authenticate(request: kazoo_auth.AuthRequest) -> str:
        issued.append(f"token-{len(issued)}")
        return issued[-1]

    keeper = kazoo_auth.TokenKeeper(Credentials(api_key=API_KEY), authenticate, renew_before=60, backoff_initial=60,
                                    backoff_max=900, on_reauthenticate=lambda: None)
    first = await keeper.current()
    keeper.vouch(first)
    error = keeper.distrust(first, "GET /x: HTTP 401 again with a token just issued")
    assert str(error) == "GET /x: HTTP 401 again with a token just issued"
    assert (first.generation, events(captured_logs, "kazoo_token_expired_early")) == (1, [
        {"event": "kazoo_token_expired_early", "log_level": "info", "generation": 1}])
    assert events(captured_logs, "kazoo_fresh_token_refused") == []
    assert await keeper.replace(first) != first  # the next 401 re-authenticates at once


# ---- fixed tokens and credential checks ------------------------------------------------------------

async def test_a_rejected_fixed_token_says_so_in_full(kazoo):
    client = kazoo.client(Credentials(token="not-a-valid-token"))
    error = await kazoo.fails(client.list_queues(OTHER), CredentialError)
    assert str(error) == f"{LISTING}: HTTP 401; the fixed auth token was rejected (HTTP 401): it is invalid or has expired"


async def test_a_fixed_token_is_never_renewed_even_with_an_exp(kazoo, clock):
    kazoo.crossbar.token_ttl = 30
    token = kazoo.crossbar.issue()
    client = kazoo.client(Credentials(token=token))
    await client.list_queues(OTHER)
    clock.at(10_000)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 0


@pytest.mark.parametrize("kwargs, message", [
    ({}, "credentials: set exactly one of an auth token, an API key, or a username with password and account name"),
    ({"token": "t", "username": USERNAME}, "credentials: set exactly one of an auth token, an API key, "
                                           "or a username with password and account name"),
    ({"account_name": ACCOUNT_NAME}, "user credentials: missing username, password"),
    ({"username": USERNAME, "password": "", "account_name": ACCOUNT_NAME}, "user credentials: missing password"),
    ({"token": ""}, "auth token is empty"),
    ({"token": "abc\x07def"}, "auth token contains whitespace or control characters (a trailing newline?)"),
    ({"api_key": API_KEY[:-1] + "\x00"}, "api key contains whitespace or control characters (a trailing newline?)"),
])
def test_credential_errors_in_full(kwargs, message):
    with pytest.raises(ValueError) as info:
        Credentials(**kwargs)
    assert str(info.value) == message


def test_credential_kinds():
    assert Credentials(token="t").kind == "token"
    assert Credentials(api_key=API_KEY).kind == "api_key"
    assert Credentials(username=USERNAME, password=PASSWORD, account_name=ACCOUNT_NAME).kind == "user"
    with pytest.raises(ValueError, match="^a fixed auth token cannot be renewed$"):
        kazoo_auth.auth_request(Credentials(token="t"))
    assert kazoo_auth.auth_request(Credentials(api_key=API_KEY)).label == "PUT /v2/api_auth"
