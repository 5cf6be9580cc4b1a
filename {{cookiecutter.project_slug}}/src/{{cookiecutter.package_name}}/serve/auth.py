"""Optional bearer-token auth, on when API_TOKEN or API_TOKEN_FILE is set.

Checked by the request middleware for every route except the public ones below (probes and
metrics), so a new route is protected by default.
"""

import hmac
import re

PUBLIC_PATHS = frozenset(
    {
        "/livez",
        "/readyz",
        "/ping",
        "/execution-parameters",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
    }
)
PUBLIC_PATTERN = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or PUBLIC_PATTERN.match(path) is not None


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
