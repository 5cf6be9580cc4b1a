"""URIs as logs, errors and /metadata may show them (without credentials), and as HTTP
requests send them (the credentials as a header)."""

import base64
import urllib.request
from urllib.parse import unquote


def redacted(uri: str) -> str:
    """`uri` without a user, password or query string (a presigned URL's signature). It never
    raises, and a password with characters a URL cannot hold (a `/`) stays out too: whatever
    comes before the last `@` goes."""
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return uri  # a path
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{rest.rpartition('@')[2]}"


def scrubbed(text: str, uri: str) -> str:
    """A library's message about `uri`, with every URL in it that starts as `uri` does (its
    scheme and credentials) shown by `redacted`: the message may quote the URL it called."""
    scheme, separator, rest = uri.partition("://")
    userinfo = rest.split("?", 1)[0].split("#", 1)[0].rpartition("@")[0] if separator else ""
    if userinfo:
        text = text.replace(f"{scheme}://{userinfo}@", f"{scheme}://")
    return text.replace(uri, redacted(uri))


def authorized_request(uri: str) -> urllib.request.Request:
    """A GET of `uri`; a user and password in it become HTTP basic authentication, which a
    redirect does not carry on. As in `redacted`, they end at the last `@` before the query: a
    password may hold a `/`."""
    scheme, separator, rest = uri.partition("://")
    at = rest.split("?", 1)[0].split("#", 1)[0].rfind("@")
    if not separator or at < 0:
        return urllib.request.Request(uri)
    user, _, password = rest[:at].partition(":")
    request = urllib.request.Request(f"{scheme}://{rest[at + 1 :].split('#', 1)[0]}")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    return request
