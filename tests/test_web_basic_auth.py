"""Basic auth as a scraper meets it: through the HTTP server started from a web config file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest
from helpers_web import served_with_web_config

# Passwords a user may well choose: the user/password separator of the header inside them.
PASSWORDS = ["pass:word", ":leading", "trailing:", "a:b:c", "::", "ünï:cødé"]


@asynccontextmanager
async def server_with_users(tmp_path: Path, users: dict[str, str]) -> AsyncIterator[str]:
    hashed = {user: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
              for user, password in users.items()}
    async with served_with_web_config(tmp_path, {"basic_auth_users": hashed}) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("password", PASSWORDS)
async def test_a_password_holding_colons_lets_its_user_in(tmp_path, password):
    async with server_with_users(tmp_path, {"prometheus": password}) as url, httpx.AsyncClient() as client:
        ok = await client.get(url + "/metrics", auth=("prometheus", password))
        assert ok.status_code == 200, password
        assert ok.text == "qubicle_up 1.0\n"
        # Only the whole password opens: neither part of it around a colon does.
        for wrong in {password.split(":")[0], password.rsplit(":")[-1], password + ":"} - {password}:
            assert (await client.get(url + "/metrics", auth=("prometheus", wrong))).status_code == 401, wrong

