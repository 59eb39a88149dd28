"""The exporter's own instrumentation. Kazoo's figures never go through here (see render.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from exporter import __version__

# Polls of a few accounts take tens of milliseconds; a thousand accounts behind a slow Kazoo, seconds.
POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class SelfMetrics:
    registry: CollectorRegistry
    api_requests: Counter
    reauthentications: Counter
    poll_errors: Counter
    poll_duration: Histogram
    missing_queues: Counter
    invalid_fields: Counter
    token_refusals: Counter
    truncated_names: Counter
    hidden_queues: Gauge
    # account id -> (counter, label values) of its series, so that they go when the account does.
    _account_series: dict[str, set[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)

    def _account(self, name: str, counter: Counter, account_id: str, *rest: str) -> Counter:
        self._account_series.setdefault(account_id, set()).add((name, (account_id, *rest)))
        return counter.labels(account_id, *rest)

    def poll_error(self, account_id: str, reason: str) -> None:
        self._account("poll_errors", self.poll_errors, account_id, reason).inc()

    def missing(self, account_id: str, count: int) -> None:
        self._account("missing_queues", self.missing_queues, account_id).inc(count)

    def invalid_field(self, account_id: str, field_name: str) -> None:
        self._account("invalid_fields", self.invalid_fields, account_id, field_name).inc()

    def forget_account(self, account_id: str) -> None:
        """Removes the series of an account no longer polled (descendant removed, shard changed)."""
        for name, labels in self._account_series.pop(account_id, ()):
            counter: Counter = getattr(self, name)
            try:
                counter.remove(*labels)
            except KeyError:  # already removed (e.g. the counter was cleared)
                pass

    def on_request(self, endpoint: str, code: str) -> None:
        self.api_requests.labels(endpoint=endpoint, code=code).inc()

    def on_reauthenticate(self) -> None:
        self.reauthentications.inc()

    def on_token_refused(self) -> None:
        self.token_refusals.inc()

    def on_truncated_name(self, kind: str) -> None:
        self.truncated_names.labels(kind=kind).inc()


def create(registry: CollectorRegistry | None = None, *, process: bool = True) -> SelfMetrics:
    # *_created series double every counter's series and no dashboard or alert of ours reads them.
    disable_created_metrics()
    registry = registry or CollectorRegistry(auto_describe=True)
    if process:
        # The default collectors read /proc for this process; they are registered on our own registry
        # rather than the global one so that tests and --demo can build several exporters.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    build_info = Gauge("qubicle_exporter_build_info", "Version of qubicle-exporter; always 1.", ["version"],
                       registry=registry)
    build_info.labels(version=__version__).set(1)
    return SelfMetrics(
        registry=registry,
        api_requests=Counter("qubicle_api_requests", "HTTP requests to Kazoo by endpoint and status code "
                             "('error' when no answer came).", ["endpoint", "code"], registry=registry),
        reauthentications=Counter("qubicle_api_reauthentications",
                                  "Re-authentications after Kazoo rejected the token (401).", registry=registry),
        poll_errors=Counter("qubicle_poll_errors", "Failed polls by account and reason.", ["account_id", "reason"],
                            registry=registry),
        poll_duration=Histogram("qubicle_poll_duration_seconds", "Wall time of one poll of every account.",
                                buckets=POLL_BUCKETS, registry=registry),
        missing_queues=Counter("qubicle_status_missing_queues",
                               "Queues listed by Kazoo but absent from the status answer (no figures that poll).",
                               ["account_id"], registry=registry),
        invalid_fields=Counter("qubicle_invalid_fields",
                               "Status fields that were missing, null or not numeric (that sample was dropped).",
                               ["account_id", "field"], registry=registry),
        token_refusals=Counter("qubicle_api_token_refusals",
                               "Tokens Kazoo refused (401) right after issuing them; re-authentication after a "
                               "401 then backs off.", registry=registry),
        truncated_names=Counter("qubicle_truncated_names",
                                "Queue or account names cut to the name length limit, by kind (queue, account).",
                                ["kind"], registry=registry),
        hidden_queues=Gauge("qubicle_poll_hidden_queues",
                            "Queues of the last poll whose figures were already older than --max-data-age when "
                            "it ended (a poll slower than --max-data-age): polled, but hidden as stale.",
                            registry=registry),
    )
