"""qubicle-exporter: Prometheus exporter for 2600Hz Kazoo Qubicle call-center queues."""

__version__ = "0.1.0"
