"""URIs as logs, errors and /metadata may show them: without credentials."""

from urllib.parse import urlsplit, urlunsplit


def redacted(uri: str) -> str:
    """`uri` without a user, password or query string (a presigned URL's signature)."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return uri  # a path
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
