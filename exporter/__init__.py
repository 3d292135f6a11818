"""Export Baidu AI Cloud BCC image inventory as Prometheus metrics."""

__version__ = "0.1.0"
