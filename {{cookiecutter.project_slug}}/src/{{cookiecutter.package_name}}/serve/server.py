"""Run the app under uvicorn, with graceful shutdown on SIGTERM."""

import signal
from types import FrameType

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
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal it caught once it has
    # shut down. With these no-op handlers in place, that re-raise is harmless, so a stop
    # ends with exit code 0 whether the server is PID 1 or runs under an init process.
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    server.run()
    return 0 if server.started else 1


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    pass
