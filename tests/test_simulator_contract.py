"""Contract of the Qubicle simulator: every documented endpoint over HTTP, Crossbar's envelope,
errors, pagination, tokens, rate limits, and a call center whose figures always hold together."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import ROOT, free_port

from exporter.simulator import Faults

MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("UTC"))


@pytest.fixture
def sim(make_simulator):
    return make_simulator(accounts=2, queues_per_account=4, seed=3, speed=0, start=MORNING, page_size=3,
                          no_qubicle_accounts=1)


def auth(sim) -> dict[str, str]:
    r = httpx.put(sim.url + "/v2/api_auth", json={"data": {"api_key": sim.api_key}})
    assert r.status_code in (200, 201)
    return {"X-Auth-Token": r.json()["auth_token"]}


def queues_url(sim, account=None) -> str:
    return f"{sim.url}/v2/accounts/{account or sim.account_ids[0]}/qubicle_queues"


def assert_envelope(body: dict, token: str | None = None) -> None:
    assert body["status"] == "success" and "data" in body and body["request_id"]
    assert {"revision", "node", "timestamp", "tokens"} <= set(body)
    if token:
        assert body["auth_token"] == token


def assert_error(response: httpx.Response, code: int) -> dict:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["status"] == "error" and body["error"] == str(code) and "message" in body and "data" in body
    return body


def test_api_auth_issues_a_jwt_with_an_absolute_exp(sim):
    r = httpx.put(sim.url + "/v2/api_auth", json={"data": {"api_key": sim.api_key}})
    token = r.json()["auth_token"]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["exp"] > time.time() + 3000
    assert r.json()["data"]["account_id"] == sim.master_account_id
    assert_error(httpx.put(sim.url + "/v2/api_auth", json={"data": {"api_key": "short"}}), 400)
    unknown = "9" * 64
    body = assert_error(httpx.put(sim.url + "/v2/api_auth", json={"data": {"api_key": unknown}}), 404)
    assert unknown in json.dumps(body["data"])  # as real Crossbar: the reason never to log a body


def test_user_auth_takes_the_md5_of_user_and_password(sim):
    c = sim.config
    creds = hashlib.md5(f"{c.username.lower()}:{c.password}".encode()).hexdigest()
    ok = httpx.put(sim.url + "/v2/user_auth", json={"data": {"credentials": creds, "account_name": c.account_name}})
    assert ok.status_code in (200, 201) and ok.json()["auth_token"].count(".") == 2
    bad = httpx.put(sim.url + "/v2/user_auth", json={"data": {"credentials": "0" * 32, "account_name": c.account_name}})
    assert_error(bad, 401)


def test_list_queues_is_paginated_descending_with_opaque_keys(sim):
    headers = auth(sim)
    seen, key, pages = [], None, 0
    while True:
        r = httpx.get(queues_url(sim), headers=headers, params={"start_key": key} if key else {})
        body = r.json()
        assert_envelope(body, headers["X-Auth-Token"])
        assert body["page_size"] == len(body["data"]) <= 3
        seen += [row["id"] for row in body["data"]]
        pages += 1
        key = body.get("next_start_key")
        if key is None:
            break
    assert pages == 2 and seen == sorted(seen, reverse=True)
    assert sorted(seen) == sorted(q for q, _ in sim.queues(sim.account_ids[0]))
    everything = httpx.get(queues_url(sim), headers=headers, params={"paginate": "false"}).json()
    assert len(everything["data"]) == 4 and "next_start_key" not in everything


def test_status_single_and_list_with_get_body_verb_tunnel_and_no_body(sim):
    headers = auth(sim)
    ids = [q for q, _ in sim.queues(sim.account_ids[0])]
    single = httpx.get(f"{queues_url(sim)}/{ids[0]}/status", headers=headers).json()["data"]
    assert isinstance(single["node"], str)
    assert {"estimated_wait", "average_wait", "recipient_count", "active_session_count", "total_sessions",
            "missed_sessions", "abandoned_sessions"} <= set(single["stats"])
    body = {"data": {"queue_ids": [ids[0], ids[1], "no-such-queue"]}}
    listed = httpx.request("GET", f"{queues_url(sim)}/status", headers=headers, json=body).json()["data"]
    assert set(listed) == {ids[0], ids[1]}  # unknown ids are simply absent
    tunnelled = httpx.post(f"{queues_url(sim)}/status", params={"verb": "GET"}, headers=headers, json=body)
    assert set(tunnelled.json()["data"]) == {ids[0], ids[1]}
    assert set(httpx.get(f"{queues_url(sim)}/status", headers=headers).json()["data"]) == set(ids)


def test_create_modify_information_and_validation(sim):
    headers = auth(sim)
    created = httpx.put(queues_url(sim), headers=headers, json={"data": {"name": "Night line", "timeout": 120}})
    assert created.status_code == 201
    queue_id = created.json()["data"]["id"]
    info = httpx.get(f"{queues_url(sim)}/{queue_id}", headers=headers).json()["data"]
    assert info["name"] == "Night line" and info["timeout"] == 120 and isinstance(info["members"], dict)
    patched = httpx.patch(f"{queues_url(sim)}/{queue_id}", headers=headers, json={"data": {"ring_timeout": 5}})
    assert patched.json()["data"]["ring_timeout"] == 5
    for bad, field in [({"name": ""}, "name"), ({"name": "x" * 129}, "name"), ({"name": "q", "ring_timeout": 0},
                       "ring_timeout"), ({"name": "q", "tick_time": 249}, "tick_time"),
                       ({"name": "q", "timeout": 9}, "timeout"), ({"name": "q", "force_away_on_reject": "yes"},
                       "force_away_on_reject")]:
        body = assert_error(httpx.put(queues_url(sim), headers=headers, json={"data": bad}), 400)
        assert field in body["data"], (bad, body)


def test_sessions_recipients_and_membership(sim):
    headers = auth(sim)
    queue_id = sim.queues(sim.account_ids[0])[0][0]
    url = f"{queues_url(sim)}/{queue_id}"
    sessions = httpx.get(url + "/sessions", headers=headers).json()["data"]
    assert sessions[0]["queue_id"] == queue_id and isinstance(sessions[0]["session_list"], list)
    members = [r["id"] for r in httpx.get(url + "/recipients", headers=headers).json()["data"]]
    assert members and all("permissions" in r for r in httpx.get(url + "/recipients", headers=headers).json()["data"])
    added = httpx.post(url + "/recipients", headers=headers, json={"data": {"action": "add", "members": ["u-new"]}})
    assert "u-new" in added.json()["data"]["members"]
    removed = httpx.post(url + "/recipients", headers=headers,
                         json={"data": {"action": "remove", "members": [members[0]]}})
    assert members[0] not in removed.json()["data"]["members"]
    only = httpx.post(url + "/recipients", headers=headers, json={"data": {"action": "set", "members": ["a", "b"]}})
    assert set(only.json()["data"]["members"]) == {"a", "b"}
    assert sim.status(sim.account_ids[0], queue_id)["stats"]["recipient_count"] == 2
    assert_error(httpx.post(url + "/recipients", headers=headers, json={"data": {"action": "swap", "members": []}}),
                 400)
    cleared = httpx.delete(url + "/recipients", headers=headers)
    assert cleared.json()["data"]["members"] == {}


def test_descendants_exclude_the_account_itself(sim):
    headers = auth(sim)
    rows = httpx.get(f"{sim.url}/v2/accounts/{sim.master_account_id}/descendants", headers=headers,
                     params={"paginate": "false"}).json()["data"]
    ids = {r["id"] for r in rows}
    assert set(sim.account_ids) <= ids and sim.master_account_id not in ids and all("name" in r for r in rows)


def test_errors(sim):
    headers = auth(sim)
    assert_error(httpx.get(queues_url(sim)), 401)
    assert_error(httpx.get(queues_url(sim), headers={"X-Auth-Token": "nope"}), 401)
    assert_error(httpx.get(queues_url(sim, sim.foreign_account_id), headers=headers), 403)
    assert_error(httpx.get(queues_url(sim, "0" * 32), headers=headers), 404)
    assert_error(httpx.get(queues_url(sim, sim.no_qubicle_account_ids[0]), headers=headers), 404)
    assert_error(httpx.get(f"{queues_url(sim)}/no-such-queue/status", headers=headers), 404)
    assert_error(httpx.put(queues_url(sim), headers=headers, content=b"{not json"), 400)


def test_an_unknown_account_is_404_bad_identifier_everywhere_and_a_known_one_is_readable(sim):
    # Crossbar answers 404 both for an unknown account and for an account without Qubicle: only the
    # account document tells them apart (the exporter reads it after a 404 on the queue listing).
    headers = auth(sim)
    unknown = "0" * 32
    for path in ("", "/qubicle_queues", "/descendants", "/qubicle_queues/status"):
        body = assert_error(httpx.get(f"{sim.url}/v2/accounts/{unknown}{path}", headers=headers), 404)
        assert body["message"] == "bad identifier" and body["auth_token"] == headers["X-Auth-Token"]
    no_qubicle = sim.no_qubicle_account_ids[0]
    assert_error(httpx.get(queues_url(sim, no_qubicle), headers=headers), 404)
    for account in (no_qubicle, sim.account_ids[0], sim.master_account_id):
        r = httpx.get(f"{sim.url}/v2/accounts/{account}", headers=headers)
        assert r.status_code == 200, r.text
        assert_envelope(r.json(), headers["X-Auth-Token"])
        assert r.json()["data"]["id"] == account
    assert_error(httpx.get(f"{sim.url}/v2/accounts/{sim.foreign_account_id}", headers=headers), 403)
    assert_error(httpx.get(f"{sim.url}/v2/accounts/{sim.account_ids[0]}"), 401)


def test_token_expiry_by_time_and_by_request_count(make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=1, speed=0, token_ttl=1)
    headers = auth(sim)
    assert httpx.get(queues_url(sim), headers=headers).status_code == 200
    time.sleep(1.2)
    assert_error(httpx.get(queues_url(sim), headers=headers), 401)
    sim.set_faults(Faults(token_expire_every=2))
    token = {"X-Auth-Token": sim.issue_token(ttl=60)}
    codes = [httpx.get(queues_url(sim), headers=token).status_code for _ in range(3)]
    assert codes == [200, 200, 401]


def test_rate_limit_answers_429_without_retry_after(make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=1, speed=0)
    token = {"X-Auth-Token": sim.issue_token(ttl=60)}
    with httpx.Client() as client:
        codes = [client.get(queues_url(sim), headers=token) for _ in range(130)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and all("Retry-After" not in r.headers for r in limited)
    assert limited[0].json()["error"] == "429"


def test_faults_errors_html_and_down(make_simulator):
    sim = make_simulator(accounts=1, queues_per_account=1, seed=1, speed=0, rate_limit=False)
    token = {"X-Auth-Token": sim.issue_token(ttl=60)}
    sim.set_faults(Faults(error_rate=1.0))
    assert httpx.get(queues_url(sim), headers=token).json()["status"] == "error"
    sim.set_faults(Faults(non_json_rate=1.0))
    html = httpx.get(queues_url(sim), headers=token)
    assert html.status_code == 502 and html.text.startswith("<html>")
    sim.set_faults(Faults(rate_limit_rate=1.0, retry_after=2))
    assert httpx.get(queues_url(sim), headers=token).headers["Retry-After"] == "2"
    sim.set_faults(Faults(down=True))
    with pytest.raises(httpx.TransportError):
        httpx.get(queues_url(sim), headers=token)
    sim.set_faults(Faults())
    assert httpx.get(queues_url(sim), headers=token).status_code == 200


def test_a_day_holds_together_and_resets_at_local_midnight(make_simulator):
    zone = ZoneInfo("America/New_York")
    sim = make_simulator(accounts=1, queues_per_account=3, seed=8, speed=0, timezone="America/New_York",
                         start=datetime(2026, 11, 24, 6, 0, tzinfo=zone))
    account = sim.account_ids[0]
    queues = [q for q, _ in sim.queues(account)]
    peak_total, before_midnight = 0, {}
    step = timedelta(minutes=2)
    for _ in range(int(timedelta(hours=19) / step)):  # 06:00 -> 01:00 the next day
        sim.advance(step.total_seconds())
        for q in queues:
            s = sim.status(account, q)
            assert s["available_recipient_count"] <= s["active_recipient_count"] <= s["stats"]["recipient_count"]
            assert sim.totals_consistent(account, q)
            if sim.now().hour == 23 and sim.now().minute >= 56:
                before_midnight[q] = s["stats"]["total_sessions"]
        peak_total = max(peak_total, sum(sim.status(account, q)["stats"]["total_sessions"] for q in queues))
    assert sum(before_midnight.values()) > 30  # a day of calls
    stats = [sim.status(account, q)["stats"] for q in queues]
    assert sum(s["total_sessions"] for s in stats) < sum(before_midnight.values()) / 5  # reset at local midnight
    assert sum(s["abandoned_sessions"] + s["missed_sessions"] for s in stats) < peak_total


def test_restart_burst_and_seed(make_simulator):
    a = make_simulator(accounts=1, queues_per_account=2, seed=5, speed=0, start=MORNING)
    b = make_simulator(accounts=1, queues_per_account=2, seed=5, speed=0, start=MORNING)
    assert a.account_ids == b.account_ids and a.queues(a.account_ids[0]) == b.queues(b.account_ids[0])
    a.advance(3600)
    b.advance(3600)
    account, queue = a.account_ids[0], a.queues(a.account_ids[0])[0][0]
    assert a.status(account, queue) == b.status(account, queue)
    node = a.status(account, queue)["node"]
    a.burst(account, queue, "abandoned", 7)
    before = a.status(account, queue)["stats"]
    a.burst(account, queue, "missed", 2)
    after = a.status(account, queue)["stats"]
    assert after["missed_sessions"] - before["missed_sessions"] == 2
    assert after["total_sessions"] - before["total_sessions"] == 2
    a.restart_queue(account, queue)
    restarted = a.status(account, queue)
    assert restarted["node"] != node
    assert restarted["stats"]["abandoned_sessions"] == 0 and restarted["stats"]["missed_sessions"] == 0


def banner(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The simulator's first four lines of output, `key: value` each."""
    assert proc.stdout is not None
    lines = {}
    for _ in range(4):
        key, value = proc.stdout.readline().strip().split(": ", 1)
        lines[key] = value
    return lines


@pytest.mark.e2e
def test_standalone_cli(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}",
                             "--accounts", "2", "--queues", "3", "--seed", "1"], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        lines = banner(proc)
        assert lines["url"] == f"http://127.0.0.1:{port}" and len(lines["api_key"]) == 64
        assert len(lines["account_ids"].split(",")) == 2
        token = httpx.put(lines["url"] + "/v2/api_auth", json={"data": {"api_key": lines["api_key"]}}).json()
        account = lines["account_ids"].split(",")[0]
        rows = httpx.get(f"{lines['url']}/v2/accounts/{account}/qubicle_queues",
                         headers={"X-Auth-Token": token["auth_token"]}).json()["data"]
        assert len(rows) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    bad = subprocess.run([sys.executable, "-m", "exporter.simulator", "--listen", "nowhere"], capture_output=True,
                         text=True, cwd=ROOT)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_thousands_of_accounts_in_one_process(make_simulator):
    sim = make_simulator(accounts=1000, queues_per_account=10, seed=1, speed=0, rate_limit=False)
    token = {"X-Auth-Token": sim.issue_token(ttl=60)}
    account = sim.account_ids[-1]
    ids = [q for q, _ in sim.queues(account)]
    answer = httpx.request("GET", queues_url(sim, account) + "/status", headers=token,
                           json={"data": {"queue_ids": ids}}).json()["data"]
    assert set(answer) == set(ids)


def test_latency_is_the_answer_time_counted_from_arrival(make_simulator):
    """The answer is made when the request arrives and held until the latency has passed, as a real
    server's latency includes its work: the simulator's own CPU time is not added on top."""
    sim = make_simulator(accounts=1, queues_per_account=2, seed=5, speed=0, start=MORNING)
    sim.set_faults(Faults(latency=1.0))
    answers: list[tuple[float, httpx.Response]] = []

    def login() -> None:
        started = time.monotonic()
        response = httpx.put(sim.url + "/v2/api_auth", json={"data": {"api_key": sim.api_key}}, timeout=10)
        answers.append((time.monotonic() - started, response))

    thread = threading.Thread(target=login)
    thread.start()
    deadline = time.monotonic() + 0.8
    while sim.tokens_issued == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    issued_while_held = sim.tokens_issued
    thread.join(10)
    assert issued_while_held == 1  # the token existed before the answer left
    elapsed, response = answers[0]
    assert response.status_code in (200, 201) and elapsed >= 1.0
    started = time.monotonic()
    refused = httpx.get(queues_url(sim), headers={"X-Auth-Token": "not-a-token"}, timeout=10)
    assert refused.status_code == 401 and time.monotonic() - started >= 1.0  # errors are as late


# ---- recipients (agents), queue documents, account documents ------------------------------------


def test_recipients_listing_is_paginated_and_named(sim):
    headers = auth(sim)
    url = f"{sim.url}/v2/accounts/{sim.account_ids[0]}/qubicle_recipients"
    rows: list[dict[str, str]] = []
    params: dict[str, str] = {}
    for _ in range(50):
        body = httpx.get(url, headers=headers, params=params).json()
        assert_envelope(body)
        assert len(body["data"]) <= 3  # the simulator's page_size
        rows += body["data"]
        if "next_start_key" not in body:
            break
        params = {"start_key": body["next_start_key"]}
    members = set()
    for queue_id, _ in sim.queues(sim.account_ids[0]):
        doc = httpx.get(f"{queues_url(sim)}/{queue_id}", headers=headers).json()["data"]
        members |= set(doc["members"])
    assert {r["id"] for r in rows} == members and len(rows) > 3
    assert all(isinstance(r["name"], str) and r["name"] for r in rows)


def test_recipients_status_batched_single_and_unknown(sim):
    headers = auth(sim)
    base = f"{sim.url}/v2/accounts/{sim.account_ids[0]}/qubicle_recipients"
    ids = [r["id"] for r in httpx.get(base, headers=headers, params={"paginate": "false"}).json()["data"]]
    body = httpx.post(base + "/status", headers=headers, json={"data": {"recipient_ids": [*ids, "f" * 32]}}).json()
    assert_envelope(body)
    assert set(body["data"]) == set(ids)  # an unknown id is left out
    for status in body["data"].values():
        assert status["availability_state"].lower().replace("_", "-") in (
            "ready", "away", "wrapup-time", "call-offer", "on-a-call", "not-logged-in")
        if status["availability_state"].lower().replace("_", "-") != "not-logged-in":
            assert {"total_calls", "missed_calls", "avg_call_time", "login_time"} <= set(status["stats"])
            assert 6e10 < status["stats"]["login_time"] < 7e10  # Gregorian seconds, Kazoo's default
    one = httpx.get(f"{base}/{ids[0]}/status", headers=headers).json()
    assert one["data"]["availability_state"] == body["data"][ids[0]]["availability_state"]
    assert_error(httpx.get(f"{base}/{'f' * 32}/status", headers=headers), 404)
    assert_error(httpx.post(base + "/status", headers=headers, json={"data": {"recipient_ids": "x"}}), 400)
    assert_error(httpx.post(base + "/status", headers=headers), 400)


def test_account_document_and_queue_document_styles(make_simulator):
    legacy = make_simulator(accounts=1, queues_per_account=1, seed=3, speed=0, start=MORNING,
                            queue_document_style="legacy")
    headers = auth(legacy)
    account = legacy.account_ids[0]
    doc = httpx.get(f"{legacy.url}/v2/accounts/{account}", headers=headers).json()["data"]
    assert doc["id"] == account and doc["name"] == "Customer 1"
    queue_id = legacy.queues(account)[0][0]
    queue = httpx.get(f"{queues_url(legacy)}/{queue_id}", headers=headers).json()["data"]
    assert queue["queue_timeout"] == 600 and queue["agent_connect_timeout"] == 20 and "timeout" not in queue
    strings = make_simulator(accounts=1, queues_per_account=1, seed=3, speed=0, start=MORNING,
                             queue_document_style="strings")
    headers = auth(strings)
    queue_id = strings.queues(strings.account_ids[0])[0][0]
    queue = httpx.get(f"{queues_url(strings)}/{queue_id}", headers=headers).json()["data"]
    assert queue["timeout"] == "600" and queue["ring_timeout"] == "20"


@pytest.mark.e2e
def test_help_describes_every_flag_and_the_user_login_it_documents_works(tmp_path):
    from exporter.simulator.cli import build_parser

    for action in build_parser()._actions:
        assert action.help and action.help.strip(), f"{action.option_strings} has no help"
    help_text = subprocess.run([sys.executable, "-m", "exporter.simulator", "--help"], capture_output=True,
                               text=True, cwd=ROOT, timeout=30).stdout
    # The user login as --help states it, then used as a newcomer would: with `check`.
    found = re.search(r"user name '([^']+)', password '([^']+)'\s+and account name '([^']+)'", help_text)
    assert found, help_text
    username, password, account_name = found.groups()
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"user name `{username}`, password `{password}`, account name `{account_name}`" in readme
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}",
                             "--accounts", "1", "--queues", "2", "--seed", "3", "--speed", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = banner(proc)
        password_file = tmp_path / "password"
        password_file.write_text(password)
        check = subprocess.run([sys.executable, "-m", "exporter", "check", "--kazoo-url", lines["url"],
                                "--username", username, "--password-file", str(password_file),
                                "--account-name", account_name, "--account-id", lines["account_ids"]],
                               capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert check.returncode == 0, check.stderr
        assert check.stdout.splitlines()[-1] == "2 queues in 1 configured account"
        assert password not in check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
