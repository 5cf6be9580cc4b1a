"""Optional bearer-token auth, on when API_TOKEN or API_TOKEN_FILE is set."""

import hmac

from fastapi import HTTPException, Request


def require_token(request: Request) -> None:
    """FastAPI dependency for the protected routers (all but health and metrics)."""
    expected: str | None = request.app.state.api_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token (send 'Authorization: Bearer <API_TOKEN>')",
            headers={"WWW-Authenticate": "Bearer"},
        )
