"""Run the app under uvicorn, with the gRPC server beside it in the same event loop, and
graceful shutdown of both on SIGTERM."""

import signal
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from ..core.artifact import check_runtime_setting
from ..core.runtime import RuntimeSettingError
from ..core.settings import Settings
from .app import create_app
from .grpc.server import GrpcServer
from .logs import configure_logging


class Server(uvicorn.Server):
    """uvicorn's server, which also tells `on_exit` the moment a stop signal arrives, so
    the gRPC server drains while HTTP does, not after it."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.on_exit()


def run(settings: Settings) -> int:
    """Serve until stopped: 0 after a graceful stop, 1 if the server could not start, 2 for
    a setting that cannot work (MODEL_RUNTIME asking for a runtime the model lacks)."""
    try:
        if not settings.model_uri:  # a fetched model is checked once it is here
            check_runtime_setting(settings.model_dir, settings.model_runtime)
    except RuntimeSettingError as error:
        print(f"configuration error: MODEL_RUNTIME: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    app = create_app(settings)
    grpc_server = GrpcServer(settings, app.state.service)
    app.state.companions.append(grpc_server)
    config = uvicorn.Config(
        app,
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
    server = Server(config, on_exit=grpc_server.drain_soon)
    # uvicorn handles SIGTERM/SIGINT itself, then re-raises the signal it caught once it has
    # shut down. With these no-op handlers in place, that re-raise is harmless, so a stop
    # ends with exit code 0 whether the server is PID 1 or runs under an init process.
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    server.run()
    return 0 if server.started else 1


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    pass
