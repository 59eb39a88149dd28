"""Grafana dashboards of qubicle-exporter, as code (Grafana's own grafana-foundation-sdk).

    python dashboards/generate.py          # writes dashboards/*.json
    python dashboards/generate.py --check  # exits 1 if a committed file differs from the code

The JSON files are committed so users can import or provision them without Python; a test fails
when they drift from this code. Colours are the alerts' default thresholds (the qubicle:*_threshold
records of alerts/qubicle.rules.yml, QubicleDataStale in alerts/qubicle.alerts.yml); a test fails
when the two differ. See docs/dashboards.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent

# The alerts' default thresholds: the wallboard turns amber/red where an alert fires.
ESTIMATED_WAIT_WARNING, ESTIMATED_WAIT_CRITICAL = 120, 300
ABANDON_RATIO_WARNING, ABANDON_RATIO_CRITICAL = 0.10, 0.25
DATA_STALE_SECONDS = 120  # QubicleDataStale (alerts/qubicle.alerts.yml)
TIMEOUT_SHARE_WARNING = 0.8  # QubicleCallersNearTimeout (qubicle:timeout_share_threshold:warning)
# Agents' states in the exporter's order (exporter/figures.py AGENT_STATES) and how boards name them.
AGENT_STATES = (("ready", "Ready"), ("ringing", "Ringing"), ("on_call", "On a call"), ("wrapup", "Wrap-up"),
                ("away", "Away"))

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
QUEUE = 'job=~"$job", account_id=~"$account", queue_id=~"$queue"'
ONE_QUEUE = 'job=~"$job", account_id=~"$account", queue_id="$queue"'
ACCOUNT = 'job=~"$job", account_id=~"$account"'

# query_result() lines read `{account_id="…", account_name="…", display="Acme / Sales", queue_id="…",
# queue_name="…"} 1 <time>` (labels sorted): the text is "account / queue", the value the queue id.
QUEUE_VARIABLE_REGEX = '/display="(?<text>[^"]*)".*queue_id="(?<value>[^"]*)"/'
# Every queue once, with its account's name where qubicle_account_info gives it, else its id.
QUEUE_VARIABLE_QUERY = (
    'label_join(max by (account_id, queue_id, queue_name) (qubicle_queue_info{%(a)s})'
    ' * on (account_id) group_left (account_name) max by (account_id, account_name) (qubicle_account_info{%(a)s}),'
    ' "display", " / ", "account_name", "queue_name")'
    ' or on (account_id, queue_id) '
    'label_join(max by (account_id, queue_id, queue_name) (qubicle_queue_info{%(a)s}),'
    ' "display", " / ", "account_id", "queue_name")'
)

GREEN, AMBER, RED, NEUTRAL = "green", "orange", "red", "blue"
TAGS = ["qubicle", "kazoo", "call-center"]
# A row header (1 unit) and one line of big stats: 4 grid units per queue.
WALLBOARD_PANEL_HEIGHT = 3
# Nine stats on one line of 24 columns: the short counts get 2 columns, the others 3.
NARROW, WIDE = 2, 3
# Waits as hh:mm:ss: Grafana's "s" unit turns 90 s into "2 min" at 0 decimals (and 119 s, green,
# into the same "2 min" as 120 s, amber).
WAIT_UNIT = "dthms"


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(v, c) for v, c in steps])


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)
    return q.instant() if instant else q.range()


def row(title: str) -> dash.Row:
    # Rows are opened in finish(): the builder marks a row collapsed as soon as it holds a panel.
    return dash.Row(title)


def links(board: dash.Dashboard) -> dash.Dashboard:
    """The three dashboards link to each other, keeping the time range and the variables."""
    return board.link(
        dash.DashboardLink("Qubicle").type(DashboardLinkType.DASHBOARDS).tags(["qubicle"])
        .as_dropdown(False).include_vars(True).keep_time(True).target_blank(False)
    )


# ---- variables ----------------------------------------------------------------------------------

def variables(board: dash.Dashboard, *, queue: bool) -> dash.Dashboard:
    board = board.with_variable(
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        .current(VariableOption(text="${DS_PROMETHEUS}", value="${DS_PROMETHEUS}", selected=True))
    )
    board = board.with_variable(
        dash.QueryVariable("job").label("Job").datasource(DS).query("label_values(qubicle_up, job)")
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".+")
    )
    board = board.with_variable(
        dash.QueryVariable("account").label("Account").datasource(DS)
        .query('label_values(qubicle_up{job=~"$job"}, account_id)')
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD).sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".+")
    )
    if queue:
        # Queue names are not unique across accounts: the value is the id, the text the name.
        board = board.with_variable(
            dash.QueryVariable("queue").label("Queue").datasource(DS)
            # max by: one line per queue even when two replicas export it.
            .query({"query": f"query_result({QUEUE_VARIABLE_QUERY % {'a': ACCOUNT}})", "refId": "queue"})
            .regex(QUEUE_VARIABLE_REGEX)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .multi(True).include_all(True).all_value(".+")
        )
    return board


# ---- wallboard ------------------------------------------------------------------------------------

def big_stat(title: str, expr: str, unit: str, steps: tuple[tuple[float | None, str], ...],
             description: str, decimals: int = 0, width: int = WIDE) -> stat.Panel:
    return (
        stat.Panel().title(title).description(description).datasource(DS).with_target(query(expr, instant=True))
        .unit(unit).decimals(decimals).thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE).justify_mode(common.BigValueJustifyMode.CENTER)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("–").height(WALLBOARD_PANEL_HEIGHT).span(width)
    )


def agents_by_state() -> stat.Panel:
    """One stat per state, side by side: the queue's logged-in agents (ready elsewhere but away here is away)."""
    panel = (
        stat.Panel().title("Agents by state").datasource(DS)
        .description("Logged-in agents of this queue by state (qubicle_queue_agents). No colour: no alert.")
        .unit("none").decimals(0).thresholds(thresholds((None, NEUTRAL)))
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).justify_mode(common.BigValueJustifyMode.CENTER)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("–").height(WALLBOARD_PANEL_HEIGHT).span(24 - 2 * WIDE)
    )
    for ref, (state, name) in zip("ABCDE", AGENT_STATES, strict=True):
        panel = panel.with_target(query(one_queue(f'qubicle_queue_agents{{{ONE_QUEUE}, state="{state}"}}'),
                                        name, ref, instant=True))
    return panel


def one_queue(metric: str) -> str:
    # max, not sum: two exporter replicas (or two jobs) scraping one queue must not double it.
    if "{" in metric:  # already selected
        return f"max({metric})"
    return f"max({metric}{{{ONE_QUEUE}}})"


def wallboard() -> dict[str, Any]:
    # Colours only where an alert of alerts/qubicle.alerts.yml is behind them, at its default
    # threshold; plain counts stay neutral blue. The TV shows the state now: an alert also waits for
    # its `for:`, and "today" figures keep their colour after the alert's window has passed.
    queue_row = (
        row("${queue:text}").repeat("queue")
        .with_panel(big_stat("Callers waiting", one_queue("qubicle_queue_active_sessions"), "none",
                             ((None, NEUTRAL),), "Callers in the queue now (qubicle_queue_active_sessions)."))
        .with_panel(big_stat("Agents ready", one_queue("qubicle_queue_available_recipients"), "none",
                             ((None, RED), (1, GREEN)),
                             "Agents logged in and ready. Red at 0: with callers waiting for 2 minutes "
                             "that is QubicleCallersWaitingNoAgentReady (critical)."))
        .with_panel(big_stat("Logged in", one_queue("qubicle_queue_active_recipients"), "none",
                             ((None, AMBER), (1, NEUTRAL)),
                             "Agents logged in, ready or away. Amber at 0: QubicleNoAgentsLoggedIn (warning).",
                             width=NARROW))
        .with_panel(big_stat("Est. wait", one_queue("qubicle_queue_estimated_wait_seconds"), WAIT_UNIT,
                             ((None, GREEN), (ESTIMATED_WAIT_WARNING, AMBER), (ESTIMATED_WAIT_CRITICAL, RED)),
                             f"Kazoo's estimated wait for a new caller. Amber from {ESTIMATED_WAIT_WARNING} s, red "
                             f"from {ESTIMATED_WAIT_CRITICAL} s: QubicleEstimatedWaitHigh."))
        .with_panel(big_stat("Avg. wait", one_queue("qubicle_queue_average_wait_seconds"), WAIT_UNIT,
                             ((None, NEUTRAL),),
                             "Today's average wait, as Kazoo reports it (no alert: no colour)."))
        .with_panel(big_stat("Calls today", one_queue("qubicle_queue_daily_sessions"), "none", ((None, NEUTRAL),),
                             "Callers today, as Kazoo counts them (resets at Kazoo's midnight).", width=NARROW))
        .with_panel(big_stat("Missed today", one_queue("qubicle_queue_daily_missed_sessions"), "none",
                             ((None, GREEN), (1, AMBER)),
                             "Callers who timed out in the queue today. Amber from 1, for the rest of the day: "
                             "QubicleSessionsMissed fires on the first one (it looks at the last 15 minutes).",
                             width=NARROW))
        .with_panel(big_stat("Abandoned today", one_queue("qubicle_queue_daily_abandoned_sessions"), "none",
                             ((None, NEUTRAL),), "Callers who hung up while waiting today."))
        .with_panel(big_stat(
            "Abandoned %",
            f"{one_queue('qubicle_queue_daily_abandoned_sessions')} / ({one_queue('qubicle_queue_daily_sessions')} > 0)",
            "percentunit", ((None, GREEN), (ABANDON_RATIO_WARNING, AMBER), (ABANDON_RATIO_CRITICAL, RED)),
            f"Abandoned / calls today. Amber from {ABANDON_RATIO_WARNING:.0%}, red from {ABANDON_RATIO_CRITICAL:.0%}: "
            "the thresholds of QubicleAbandonRateHigh (which looks at the last 30 minutes).",
            decimals=1,
        ))
        # Second line: the queue's agents by state, its timeout, and how near its callers are to it.
        .with_panel(agents_by_state())
        .with_panel(big_stat("Timeout", one_queue("qubicle_queue_timeout_seconds"), WAIT_UNIT, ((None, NEUTRAL),),
                             "The queue's timeout, from its settings: a caller waiting this long is dropped as "
                             "missed.", width=WIDE))
        .with_panel(big_stat(
            "Wait / timeout",
            f"max((qubicle_queue_longest_wait_seconds{{{ONE_QUEUE}}} or qubicle_queue_estimated_wait_seconds"
            f"{{{ONE_QUEUE}}}) / (qubicle_queue_timeout_seconds{{{ONE_QUEUE}}} > 0))",
            "percentunit", ((None, GREEN), (TIMEOUT_SHARE_WARNING, AMBER), (1, RED)),
            f"The longest wait (the estimated wait where Kazoo does not send the longest) as a share of the "
            f"queue's timeout. Amber from {TIMEOUT_SHARE_WARNING:.0%}: QubicleCallersNearTimeout; red at 100 %: "
            "callers are being missed.", width=WIDE))
    )
    board = (
        dash.Dashboard("Qubicle wallboard").uid("qubicle-wallboard").tags(TAGS)
        .description("Per queue, for a TV in kiosk mode: callers waiting, agents, waits, today's calls.")
        .refresh("10s").time("now-1h", "now").timezone("browser").editable()
    )
    return finish(links(variables(board, queue=True)).with_row(queue_row))


# ---- queue trends ----------------------------------------------------------------------------------

# Firing alerts of this project on the queues shown (alerts without a queue, e.g. QubicleDataStale,
# carry account_id only; QubicleExporterDown carries neither and shows on every account).
ALERTS_ANNOTATION = ('ALERTS{alertstate="firing", alertname=~"Qubicle.*", '
                     'account_id=~"$account|", queue_id=~"$queue|"}')

def graph(title: str, unit: str, *targets: prometheus.Dataquery, width: int = 12,
          steps: tuple[tuple[float | None, str], ...] | None = None, description: str = "") -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).description(description).datasource(DS).unit(unit).height(8).span(width)
        .fill_opacity(10).line_width(1).show_points(common.VisibilityMode.NEVER)
        .legend(VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
    )
    if steps:
        panel = panel.thresholds(thresholds(*steps)).thresholds_style(
            GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.LINE_AND_AREA))
    for target in targets:
        panel = panel.with_target(target)
    return panel


# max by queue: every replica (or job) scraping an account exports the same figures for its
# queues; a sum would double them. The exporter's own rates (API requests, errors) differ per
# process and are summed on the exporter dashboard.
BY_QUEUE = "account_id, queue_id, queue_name"
LEGEND = "{{queue_name}} ({{account_id}})"


def per_queue(agg: str, expr: str) -> str:
    return f"{agg} by ({BY_QUEUE}) ({expr})"


def queues_dashboard() -> dict[str, Any]:
    board = (
        dash.Dashboard("Qubicle queues").uid("qubicle-queues").tags(TAGS)
        .description("Queue trends for supervisors: calls, missed and abandoned, waits, agents; alerts as annotations.")
        .refresh("1m").time("now-24h", "now").timezone("browser").editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .annotation(
            dash.AnnotationQuery().name("Qubicle alerts").datasource(DS).enable(True).icon_color("red")
            .expr(ALERTS_ANNOTATION)
        )
    )
    board = links(variables(board, queue=True))
    board = board.with_row(
        row("Calls")
        # A rate, not "calls per $__interval": a per-minute figure reads the same at every zoom.
        .with_panel(graph("Calls per minute", "cpm",
                          query(per_queue("max", f"rate(qubicle_queue_sessions_total{{{QUEUE}}}[$__rate_interval])")
                                + " * 60", LEGEND)))
        .with_panel(graph("Missed and abandoned in the last hour", "short",
                          query(per_queue("max", f"queue:qubicle_queue_missed_sessions:increase1h{{{QUEUE}}}"),
                                "missed: " + LEGEND, "A"),
                          query(per_queue("max", f"queue:qubicle_queue_abandoned_sessions:increase1h{{{QUEUE}}}"),
                                "abandoned: " + LEGEND, "B")))
        .with_panel(graph("Abandon ratio (30 min) against the alert thresholds", "percentunit",
                          query(per_queue("max", f"queue:qubicle_queue_abandoned_sessions:ratio30m{{{QUEUE}}}"),
                                LEGEND),
                          steps=((None, "transparent"), (ABANDON_RATIO_WARNING, AMBER), (ABANDON_RATIO_CRITICAL, RED)),
                          description="QubicleAbandonRateHigh: above 10 % (warning) / 25 % (critical) for 5 minutes, "
                                      "counted once the queue had at least 10 callers in the 30 minutes."))
        .with_panel(graph("Callers waiting", "short",
                          query(per_queue("max", f"qubicle_queue_active_sessions{{{QUEUE}}}"), LEGEND)))
    )
    board = board.with_row(
        row("Waits and agents")
        .with_panel(graph("Estimated, average and longest wait", "s",
                          query(per_queue("max", f"qubicle_queue_estimated_wait_seconds{{{QUEUE}}}"),
                                "estimated: " + LEGEND, "A"),
                          query(per_queue("max", f"qubicle_queue_average_wait_seconds{{{QUEUE}}}"),
                                "average today: " + LEGEND, "B"),
                          query(per_queue("max", f"qubicle_queue_longest_wait_seconds{{{QUEUE}}}"),
                                "longest waiting: " + LEGEND, "C"),
                          steps=((None, "transparent"), (ESTIMATED_WAIT_WARNING, AMBER),
                                 (ESTIMATED_WAIT_CRITICAL, RED)),
                          description="Threshold areas: QubicleEstimatedWaitHigh (estimated wait). The longest "
                                      "wait exists only where Kazoo reports it."))
        .with_panel(graph("Agents logged in vs ready", "short",
                          query(per_queue("max", f"qubicle_queue_active_recipients{{{QUEUE}}}"),
                                "logged in: " + LEGEND, "A"),
                          query(per_queue("max", f"qubicle_queue_available_recipients{{{QUEUE}}}"),
                                "ready: " + LEGEND, "B")))
        .with_panel(graph("Agent availability (ready / logged in)", "percentunit",
                          query(per_queue("max", f"queue:qubicle_queue_available_recipients:ratio{{{QUEUE}}}"),
                                LEGEND), width=24))
    )
    board = board.with_row(
        row("Agents by state and the queue's timeout")
        .with_panel(graph("Agents by state", "short",
                          *(query(per_queue("max", f'qubicle_queue_agents{{{QUEUE}, state="{state}"}}'),
                                  f"{name}: " + LEGEND, ref)
                            for ref, (state, name) in zip("ABCDE", AGENT_STATES, strict=True)),
                          description="Logged-in agents of each queue by state (qubicle_queue_agents); an agent "
                                      "ready elsewhere but away for a queue counts as away there.")
                    .stacking(StackingConfig().mode(common.StackingMode.NORMAL)))
        .with_panel(graph("Wait against the queue's timeout", "percentunit",
                          query(per_queue("max", f"queue:qubicle_queue_wait_timeout:ratio{{{QUEUE}}}"), LEGEND),
                          steps=((None, "transparent"), (TIMEOUT_SHARE_WARNING, AMBER), (1, RED)),
                          description="The longest wait (else the estimated wait) / the queue's timeout. "
                                      "QubicleCallersNearTimeout warns from 80 % for 1 minute; at 100 % callers "
                                      "are dropped as missed."))
    )
    return finish(board)


# ---- agents (supervisors; the opt-in --agent-metrics series) -----------------------------------------

AGENT_NAMES = f"max by (account_id, agent_id, agent_name) (qubicle_agent_state{{{ACCOUNT}}})"


def named(expr: str) -> str:
    """A per-agent figure with the agent's name (qubicle_agent_state carries it)."""
    return f"max by (account_id, agent_id) ({expr}) * on (account_id, agent_id) group_left (agent_name) {AGENT_NAMES}"


def agents_dashboard() -> dict[str, Any]:
    board = (
        dash.Dashboard("Qubicle agents").uid("qubicle-agents").tags(TAGS)
        .description("Agents for supervisors: who is in which state, calls and missed calls per agent "
                     "(needs the exporter's --agent-metrics), and agents by state per account.")
        .refresh("30s").time("now-6h", "now").timezone("browser").editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )
    board = links(variables(board, queue=False))
    now = (
        table.Panel().title("Agents now").datasource(DS)
        .description("Every agent of the selected accounts and its state now (qubicle_agent_state == 1). "
                     "Agents not logged in are not listed.")
        .with_target(query(f"max by (account_id, agent_id, agent_name, state) (qubicle_agent_state{{{ACCOUNT}}}) == 1",
                           instant=True).format(PromQueryFormat.TABLE))
        .unit("none").height(10).span(12)
    )
    board = board.with_row(
        row("Agents")
        .with_panel(now)
        .with_panel(graph("Agents by state, per account", "short",
                          *(query(f'max by (account_id, state) (qubicle_agents{{{ACCOUNT}, state="{state}"}})',
                                  f"{name}: {{{{account_id}}}}", ref)
                            for ref, (state, name) in zip("ABCDE", AGENT_STATES, strict=True)),
                          description="Distinct logged-in agents of each account by state (qubicle_agents).")
                    .stacking(StackingConfig().mode(common.StackingMode.NORMAL)).height(10))
    )
    board = board.with_row(
        row("Per agent")
        .with_panel(graph("Calls handled per hour", "short",
                          query(named(f"rate(qubicle_agent_calls_total{{{ACCOUNT}}}[$__rate_interval])") + " * 3600",
                                "{{agent_name}}"), width=8))
        .with_panel(graph("Calls missed per hour (offered, not taken)", "short",
                          query(named(f"rate(qubicle_agent_missed_calls_total{{{ACCOUNT}}}[$__rate_interval])")
                                + " * 3600", "{{agent_name}}"), width=8))
        .with_panel(graph("Average call time (this login)", "s",
                          query(named(f"qubicle_agent_average_call_seconds{{{ACCOUNT}}}"), "{{agent_name}}"),
                          width=8))
    )
    return finish(board)


# ---- exporter health --------------------------------------------------------------------------------

def exporter_dashboard() -> dict[str, Any]:
    board = (
        dash.Dashboard("Qubicle exporter").uid("qubicle-exporter").tags([*TAGS, "exporter"])
        .description("Health of qubicle-exporter: Kazoo reachability, poll cost, API requests, errors.")
        .refresh("30s").time("now-6h", "now").timezone("browser").editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )
    board = links(variables(board, queue=False))
    up = (
        stat.Panel().title("Kazoo reachable, per account").datasource(DS)
        .description("qubicle_up: 1 when the last poll of the account succeeded. "
                     "QubicleKazooUnreachable fires after 2 minutes at 0.")
        .with_target(query(f"qubicle_up{{{ACCOUNT}}}", "{{account_id}} {{instance}}", instant=True))
        .unit("none").thresholds(thresholds((None, RED), (1, GREEN)))
        .mappings([ValueMap(options={"0": ValueMappingResult(text="DOWN", color="red", index=0),
                                     "1": ValueMappingResult(text="UP", color="green", index=1)})])
        .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(5).span(12)
    )
    age = graph("Age of the data (since the last successful poll)", "s",
                query(f"time() - qubicle_last_poll_success_timestamp_seconds{{{ACCOUNT}}}",
                      "{{account_id}} {{instance}}"),
                steps=((None, "transparent"), (DATA_STALE_SECONDS, RED)),
                description=f"QubicleDataStale fires when this stays above {DATA_STALE_SECONDS} s for 2 minutes.")
    board = board.with_row(row("Kazoo").with_panel(up).with_panel(age.height(5)))
    board = board.with_row(
        row("Polls and API")
        .with_panel(graph("Poll duration", "s",
                          query('histogram_quantile(0.5, sum by (le, job, instance) '
                                '(rate(qubicle_poll_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))',
                                "p50 {{instance}}", "A"),
                          query('histogram_quantile(0.99, sum by (le, job, instance) '
                                '(rate(qubicle_poll_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))',
                                "p99 {{instance}}", "B"),
                          description="One poll covers every account of the instance; it should stay well "
                                      "below the poll interval."))
        .with_panel(graph("Queues hidden by slow polls", "short",
                          query('max by (instance) (qubicle_poll_hidden_queues{job=~"$job"})', "{{instance}}"),
                          steps=((None, "transparent"), (1, RED)),
                          description="Queues Kazoo answered for that were already older than --max-data-age "
                                      "when the poll ended, so they are missing from /metrics. "
                                      "QubiclePollHidesQueues fires after 5 minutes above 0."))
        .with_panel(graph("Kazoo API requests by endpoint and code", "reqps",
                          query('sum by (endpoint, code) (rate(qubicle_api_requests_total{job=~"$job"}'
                                '[$__rate_interval]))', "{{endpoint}} {{code}}")))
        .with_panel(graph("Poll errors by reason", "short",
                          query(f"sum by (account_id, reason) "
                                f"(increase(qubicle_poll_errors_total{{{ACCOUNT}}}[$__rate_interval]))",
                                "{{reason}} {{account_id}}")))
        .with_panel(graph("Re-authentications, refused fresh tokens", "short",
                          query('sum by (instance) (increase(qubicle_api_reauthentications_total{job=~"$job"}'
                                '[$__rate_interval]))', "re-authentications {{instance}}", "A"),
                          query('sum by (instance) (increase(qubicle_api_token_refusals_total{job=~"$job"}'
                                '[$__rate_interval]))', "fresh token refused {{instance}}", "B"),
                          description="A refused fresh token pauses re-authentication after a 401 (60 s, "
                                      "doubling): see README, Authentication."))
        .with_panel(graph("Queues missing from status answers, invalid fields, names cut", "short",
                          query(f"sum by (account_id) (increase(qubicle_status_missing_queues_total{{{ACCOUNT}}}"
                                f"[$__rate_interval]))", "missing {{account_id}}", "A"),
                          query(f"sum by (field) (increase(qubicle_invalid_fields_total{{{ACCOUNT}}}"
                                f"[$__rate_interval]))", "invalid {{field}}", "B"),
                          query('sum by (kind) (increase(qubicle_truncated_names_total{job=~"$job"}'
                                '[$__rate_interval]))', "{{kind}} names cut", "C")))
        .with_panel(graph("Queues per account", "short",
                          query(f"max by (account_id) (qubicle_queues{{{ACCOUNT}}})", "{{account_id}}")))
    )
    board = board.with_row(
        row("Process")
        .with_panel(graph("Memory (RSS)", "bytes",
                          query('process_resident_memory_bytes{job=~"$job"}', "{{instance}}"), width=8))
        .with_panel(graph("CPU", "percentunit",
                          query('rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval])', "{{instance}}"),
                          width=8))
        .with_panel(
            stat.Panel().title("Version").datasource(DS)
            .with_target(query('count by (version) (qubicle_exporter_build_info{job=~"$job"})', "{{version}}",
                               instant=True))
            .unit("none").text_mode(common.BigValueTextMode.NAME).color_mode(common.BigValueColorMode.NONE)
            .graph_mode(common.BigValueGraphMode.NONE)
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False)).height(8).span(8)
        )
    )
    return finish(board)


# ---- output -------------------------------------------------------------------------------------------

def finish(board: dash.Dashboard) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # One file serves both ways in: provisioning uses the datasource variable as it is; Grafana's
    # import UI asks for DS_PROMETHEUS and substitutes it into the variable's default.
    data["__inputs"] = [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "",
                         "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}]
    data["__requires"] = [{"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}]
    # The builder has no setters for a Prometheus annotation's formatting: what Grafana shows on hover.
    for annotation in data.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            annotation.update(step="1m", titleFormat="{{alertname}}", tagKeys="severity",
                              textFormat="{{severity}}: {{queue_name}} {{account_id}}")
    # Every row is open (a wallboard must not hide a queue behind a click). Grafana keeps the panels
    # of an open row in the top-level list, after the row; the builder nests them as for a collapsed
    # row: flatten, and number every panel.
    flat: list[dict[str, Any]] = []
    for panel in data.get("panels", []):
        flat.append(panel)
        if panel.get("type") == "row":
            flat.extend(panel.get("panels", []))
            panel["panels"] = []
            panel["collapsed"] = False
    for number, panel in enumerate(flat, start=1):
        panel["id"] = number
    data["panels"] = flat
    return data


DASHBOARDS = {
    "qubicle-wallboard.json": wallboard,
    "qubicle-queues.json": queues_dashboard,
    "qubicle-exporter.json": exporter_dashboard,
    "qubicle-agents.json": agents_dashboard,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs from the code")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run make dashboards): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
