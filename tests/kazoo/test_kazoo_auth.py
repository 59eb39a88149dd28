"""Authentication: the three credentials, renewal before exp, single-flight re-authentication, no loops."""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web

from exporter.kazoo import ClientSettings, CredentialError, Credentials, ServerError
from exporter.kazoo import auth as kazoo_auth

from .fake_crossbar import (
    ACCOUNT,
    ACCOUNT_NAME,
    API_KEY,
    OTHER,
    PASSWORD,
    USER_MD5,
    USERNAME,
    error_answer,
    make_jwt,
)


class FakeClock:
    """Moves the client's clocks (monotonic and wall) without sleeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real_monotonic, real_wall = kazoo_auth.monotonic, kazoo_auth.wall_clock
        monkeypatch.setattr(kazoo_auth, "monotonic", lambda: real_monotonic() + self.offset)
        monkeypatch.setattr(kazoo_auth, "wall_clock", lambda: real_wall() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch)


# ---- credentials ---------------------------------------------------------------------------------

def test_api_key_length_is_checked_at_construction_without_echoing_it():
    with pytest.raises(ValueError) as info:
        Credentials(api_key="0123456789ab")
    assert str(info.value) == "api key must be exactly 64 characters, got 12"
    with pytest.raises(ValueError, match="got 65"):
        ClientSettings("http://127.0.0.1:1", Credentials(api_key=API_KEY + "\n"))


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of"),
    ({"token": "t0ken", "api_key": API_KEY}, "exactly one of"),
    ({"username": USERNAME, "password": PASSWORD}, "missing account_name"),
    ({"password": PASSWORD}, "missing username, account_name"),
    ({"token": ""}, "auth token is empty"),
    ({"token": "abc.def.ghi\n"}, "trailing newline"),
    ({"api_key": API_KEY[:-1] + " "}, "api key contains whitespace"),
])
def test_bad_credentials_are_one_line_errors_without_the_secret(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        Credentials(**kwargs)
    text = str(info.value)
    assert "\n" not in text and PASSWORD not in text and API_KEY[:-1] not in text and "abc.def" not in text


def test_secrets_stay_out_of_reprs():
    for credentials in (Credentials(api_key=API_KEY), Credentials(token="s3cr3t.t0k3n.x"),
                        Credentials(username=USERNAME, password=PASSWORD, account_name=ACCOUNT_NAME)):
        settings = ClientSettings("http://127.0.0.1:1", credentials)
        shown = repr(credentials) + repr(settings) + str(settings)
        assert API_KEY not in shown and "s3cr3t" not in shown and PASSWORD not in shown
    assert USERNAME in repr(Credentials(username=USERNAME, password=PASSWORD, account_name=ACCOUNT_NAME))


async def test_api_key_authentication_sends_the_key_and_uses_the_token(kazoo):
    client = kazoo.client()
    assert [q.id for q in await client.list_queues(ACCOUNT)][:2] == ["q007", "q006"]
    auth = kazoo.crossbar.requests("api_auth")
    assert len(auth) == 1 and auth[0].method == "PUT" and auth[0].body == {"data": {"api_key": API_KEY}}
    token = kazoo.crossbar.issued[0]
    listing = kazoo.crossbar.requests("queues")
    assert listing and all(r.token == token for r in listing)
    assert kazoo.codes("api_auth") == ["201"]


async def test_user_auth_sends_md5_of_lowercase_user_and_password(kazoo):
    client = kazoo.client(Credentials(username=USERNAME, password=PASSWORD, account_name=ACCOUNT_NAME))
    await client.authenticate()
    (sent,) = kazoo.crossbar.requests("user_auth")
    assert sent.method == "PUT" and sent.token is None
    assert sent.body == {"data": {"credentials": USER_MD5, "account_name": ACCOUNT_NAME}}
    assert await client.list_queues(OTHER) != []
    assert kazoo.codes("user_auth") == ["200"]


async def test_wrong_user_password_is_a_credential_error(kazoo):
    client = kazoo.client(Credentials(username=USERNAME, password="wrong-password", account_name=ACCOUNT_NAME))
    error = await kazoo.fails(client.authenticate(), CredentialError)
    assert str(error) == "PUT /v2/user_auth: Kazoo rejected the user credentials (HTTP 401)"
    assert error.reason == "auth"


async def test_fixed_token_is_sent_as_is_and_never_renewed(kazoo):
    token = kazoo.crossbar.issue()
    client = kazoo.client(Credentials(token=token))
    await client.authenticate()
    assert await client.list_queues(ACCOUNT)
    assert kazoo.crossbar.count("api_auth") == 0
    assert {r.token for r in kazoo.crossbar.requests("queues")} == {token}


async def test_a_fixed_token_that_is_rejected_is_a_credential_error(kazoo):
    client = kazoo.client(Credentials(token="not-a-valid-token"))
    error = await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert "fixed auth token was rejected" in str(error)
    assert kazoo.crossbar.count("api_auth") == 0 and kazoo.reauths == 0


# ---- 401, re-authentication ----------------------------------------------------------------------

async def test_token_expiry_mid_poll_reauthenticates_once_and_retries(kazoo):
    client = kazoo.client()
    assert len(await client.queue_list_status(ACCOUNT, ["q001"])) == 1
    kazoo.crossbar.expire_all()  # Kazoo forgot the token between two requests of one poll
    assert set(await client.queue_list_status(ACCOUNT, ["q001", "q002"])) == {"q001", "q002"}
    assert kazoo.crossbar.count("api_auth") == 2
    assert kazoo.reauths == 1
    assert kazoo.codes("queue_list_status") == ["200", "401", "200"]
    first, retried = kazoo.crossbar.requests("queue_list_status")[1:]
    assert first.token == kazoo.crossbar.issued[0] and retried.token == kazoo.crossbar.issued[1]


async def test_fifty_concurrent_401s_cause_exactly_one_authentication(kazoo):
    client = kazoo.client(status_batch_size=1, max_connections=60)
    kazoo.crossbar.queues[ACCOUNT] = [f"q{i:03d}" for i in range(50)]
    await client.authenticate()
    kazoo.crossbar.expire_all()
    kazoo.crossbar.auth_delay = 0.05  # the 401s all arrive while the one re-authentication runs
    result = await client.queue_list_status(ACCOUNT, kazoo.crossbar.queues[ACCOUNT])
    assert len(result) == 50
    assert kazoo.crossbar.count("api_auth") == 2  # the first one, then ONE for all fifty 401s
    assert kazoo.reauths == 1
    assert kazoo.codes("queue_list_status").count("401") == 50
    assert kazoo.codes("queue_list_status").count("200") == 50


async def test_first_authentication_is_single_flight_too(kazoo):
    client = kazoo.client()
    kazoo.crossbar.auth_delay = 0.05
    await asyncio.gather(*(client.list_queues(ACCOUNT) for _ in range(10)))
    assert kazoo.crossbar.count("api_auth") == 1
    assert kazoo.reauths == 0  # a first authentication is not a RE-authentication


async def test_a_fresh_token_refused_again_fails_the_request_and_backs_off(kazoo, clock):
    client = kazoo.client(credential_backoff=60, credential_backoff_max=900)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [lambda r: _deny(r) for _ in range(20)]
    error = await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert "HTTP 401 again with a token just issued" in str(error)
    assert kazoo.crossbar.count("api_auth") == 2
    # Kazoo keeps refusing: no re-authentication at all until the backoff has passed (each would
    # cost 35 of its 100 rate-limit tokens), and never a loop within a call.
    for _ in range(3):
        error = await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
        assert "not authenticating again for" in str(error)
    assert kazoo.crossbar.count("api_auth") == 2
    assert kazoo.crossbar.count("queues") == 2 + 3
    clock.advance(61)
    await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 3  # one try after the backoff, refused again: it doubles
    clock.advance(61)
    await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 3
    clock.advance(60)
    await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 4
    assert kazoo.token_refusals == 3


async def test_tokens_refused_after_every_authentication_cause_no_storm_across_accounts_and_polls(kazoo):
    # Issue 12: data calls keep answering 401 right after a successful authentication. 20 accounts
    # polled concurrently, 5 polls: the README's one shared re-authentication, not one per account.
    client = kazoo.client(credential_backoff=60)
    await client.authenticate()
    kazoo.crossbar.refuse_tokens = True
    accounts = [f"{i:032x}" for i in range(20)]
    for _ in range(5):
        results = await asyncio.gather(*(client.list_queues(a) for a in accounts), return_exceptions=True)
        assert all(isinstance(r, CredentialError) for r in results), results
    assert kazoo.crossbar.count("api_auth") == 2  # the first, and one shared re-authentication
    assert kazoo.token_refusals == 1
    kazoo.crossbar.refuse_tokens = False
    # The token is kept: once Kazoo accepts it again the accounts come back without waiting.
    assert await client.list_queues(ACCOUNT)
    assert kazoo.crossbar.count("api_auth") == 2


async def test_a_fresh_token_refused_once_does_not_close_the_gate(kazoo):
    # Under load Kazoo may expire a token early: that must not take every account down for the
    # credential backoff.
    client = kazoo.client(credential_backoff=60)
    await client.authenticate()
    kazoo.crossbar.script["queues"] = [lambda r: _deny(r) for _ in range(2)]
    await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert [q.id for q in await client.list_queues(ACCOUNT)]


async def _deny(request: web.Request) -> web.Response:
    return error_answer(401, request)


# ---- rejected credentials: back off --------------------------------------------------------------

async def test_rejected_api_key_backs_off_instead_of_looping(kazoo, clock):
    kazoo.crossbar.reject_auth = True
    client = kazoo.client(credential_backoff=60, credential_backoff_max=900)
    error = await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert str(error) == "PUT /v2/api_auth: Kazoo rejected the API key (HTTP 404)"
    requests_before = len(kazoo.crossbar.seen)
    for _ in range(5):
        error = await kazoo.fails(client.queue_list_status(ACCOUNT, ["q001"]), CredentialError)
        assert "not authenticating again for" in str(error)
    assert len(kazoo.crossbar.seen) == requests_before  # raised at once, no network at all
    clock.advance(61)
    await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 2
    clock.advance(61)  # the backoff doubled to 120 s
    await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert kazoo.crossbar.count("api_auth") == 2
    kazoo.crossbar.reject_auth = False  # the operator fixed the key
    clock.advance(60)
    assert await client.list_queues(ACCOUNT)
    assert kazoo.crossbar.count("api_auth") == 3


async def test_unknown_key_echoed_by_kazoo_never_leaks(kazoo):
    wrong = "f00d" * 16
    client = kazoo.client(Credentials(api_key=wrong))
    error = await kazoo.fails(client.list_queues(ACCOUNT), CredentialError)
    assert wrong not in str(error) and error.reason == "auth"
    assert wrong in kazoo.crossbar.secrets_seen  # so the guard checks it too


async def test_auth_server_error_is_not_a_credential_error_and_does_not_close_the_gate(kazoo):
    kazoo.crossbar.script["api_auth"] = [error_answer(503) for _ in range(3)]
    client = kazoo.client()
    error = await kazoo.fails(client.authenticate(), ServerError)
    assert str(error) == "PUT /v2/api_auth: HTTP 503 after 3 attempts"
    await client.authenticate()  # Kazoo is back: no credential backoff for a passing failure
    assert kazoo.crossbar.count("api_auth") == 4


# ---- renewal before exp --------------------------------------------------------------------------

async def test_token_is_renewed_proactively_before_exp(kazoo, clock):
    client = kazoo.client(renew_before=60)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 1
    clock.advance(3600 - 90)  # 90 s before exp: not yet
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 1
    clock.advance(40)  # 50 s before exp: renew first, before any 401
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2
    assert "401" not in kazoo.codes("queues") and kazoo.reauths == 0
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[1]


async def test_short_tokens_are_kept_half_their_life_not_renewed_on_every_request(kazoo, clock):
    kazoo.crossbar.token_ttl = 30  # a cluster with tokens shorter than renew_before
    client = kazoo.client(renew_before=60)
    for _ in range(5):
        await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 1
    clock.advance(16)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2


async def test_a_failed_renewal_keeps_the_still_valid_token(kazoo, clock):
    client = kazoo.client(renew_before=60, retries=0)
    await client.authenticate()
    clock.advance(3600 - 30)
    kazoo.crossbar.script["api_auth"] = [error_answer(503)]
    assert await client.list_queues(OTHER)  # renewal failed, the old token still works
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[0]
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 2  # not retried on the very next request
    clock.advance(8)
    await client.list_queues(OTHER)
    assert kazoo.crossbar.count("api_auth") == 3
    assert kazoo.crossbar.requests("queues")[-1].token == kazoo.crossbar.issued[1]


def test_renewal_delay_and_jwt_reading():
    assert kazoo_auth.renewal_delay(3600, 60) == 3540
    assert kazoo_auth.renewal_delay(30, 60) == 15
    assert kazoo_auth.renewal_delay(12, 60) == 10  # MIN_TOKEN_USE
    assert kazoo_auth.renewal_delay(4, 60) == 4
    assert kazoo_auth.jwt_expiry(make_jwt(1234.5, 1)) == 1234.5
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1, iat=1400), now=9999) == 3600  # iat: skew-free
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1), now=4000) == 1000
    assert kazoo_auth.token_lifetime(make_jwt(5000, 1), now=6000) is None  # looks expired: rely on 401
    def raw(payload: bytes) -> str:
        return "e30." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".sig"

    junk = ["", "abc", "a.b.c", "a.!!!.c", raw(b"null"), raw(b'{"exp": Infinity}'), raw(b'{"exp": true}'),
            raw(b'{"exp": "1234"}'), raw(b'{"exp": 1e400}'), raw(b"\xff\xfe")]
    for junk_token in junk:
        assert kazoo_auth.jwt_expiry(junk_token) is None


async def test_a_token_that_worked_and_then_expired_early_does_not_close_the_backoff():
    # Kazoo under load (or expiring tokens by use count) may refuse a token that already served
    # requests: that is an early expiry, not "fresh tokens are refused", and must not stop the
    # next 401 from re-authenticating (the fault soak expires tokens every 100 requests).
    issued: list[str] = []

    async def authenticate(request: kazoo_auth.AuthRequest) -> str:
        issued.append(f"token-{len(issued)}")
        return issued[-1]

    refusals: list[int] = []
    keeper = kazoo_auth.TokenKeeper(Credentials(api_key=API_KEY), authenticate, renew_before=60, backoff_initial=60,
                                    backoff_max=900, on_reauthenticate=lambda: None,
                                    on_token_refused=lambda: refusals.append(1))
    first = await keeper.current()
    second = await keeper.replace(first)
    keeper.vouch(second)                     # it worked for a while...
    keeper.distrust(second, "401 again")     # ...then a retry with it was refused
    third = await keeper.replace(second)     # the next 401 still re-authenticates
    assert (len(issued), refusals) == (3, [])
    keeper.distrust(third, "401 again")      # never worked: fresh tokens are refused
    with pytest.raises(CredentialError, match="not authenticating again for 60s"):
        await keeper.replace(third)
    assert (len(issued), refusals) == (3, [1])
