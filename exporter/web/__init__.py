"""HTTP serving, laid out like Prometheus' exporter-toolkit.

- server.py: the aiohttp application, its routes and middlewares, start and stop.
- config.py: the --web.config.file YAML schema and the TLS context built from it.
- auth.py: basic auth against bcrypt hashes and its cache of verdicts.
- ratelimit.py: the rate_limit token bucket.
- landing.py: the HTML of "/".
"""

from exporter.web.auth import BasicAuth
from exporter.web.config import TLSConfig, WebConfig, WebConfigError, load_web_config, parse_web_config
from exporter.web.landing import landing_page
from exporter.web.ratelimit import RateLimiter
from exporter.web.server import WebHandlers, WebServer, create_app, parse_listen

__all__ = [
    "BasicAuth", "RateLimiter", "TLSConfig", "WebConfig", "WebConfigError", "WebHandlers", "WebServer",
    "create_app", "landing_page", "load_web_config", "parse_listen", "parse_web_config",
]
