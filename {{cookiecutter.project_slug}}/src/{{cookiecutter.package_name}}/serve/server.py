"""Run the app under uvicorn, with graceful shutdown on SIGTERM."""

import uvicorn

from ..config import Settings
from .app import create_app
from .logs import configure_logging


def run(settings: Settings) -> int:
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        # On SIGTERM: stop accepting, let in-flight requests finish for this long, exit 0.
        timeout_graceful_shutdown=settings.graceful_timeout,
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
