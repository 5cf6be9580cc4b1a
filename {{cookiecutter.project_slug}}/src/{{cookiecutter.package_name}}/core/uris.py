"""URIs as logs, errors and /metadata may show them: without credentials."""


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
