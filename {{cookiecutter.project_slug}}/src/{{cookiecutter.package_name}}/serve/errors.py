"""One error shape per protocol, decided by the path, for every error the server answers.

The Open Inference Protocol's routes (under /v2) answer `{"error": "..."}`, as the protocol
says; every other route answers `{"detail": ...}`, as FastAPI does. The request middleware
(401, 413, 500) and the app's exception handlers all build their bodies here, and the OpenAPI
document declares them from here.
"""

from typing import Any

V2_PREFIX = "/v2"


def is_v2(path: str) -> bool:
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


def error_body(path: str, message: Any) -> dict[str, Any]:
    return {"error" if is_v2(path) else "detail": message}
