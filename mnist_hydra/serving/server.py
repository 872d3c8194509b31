"""Running the app: uvicorn on the socket the command bound, with the limits of limits.py, until
Ctrl+C or SIGTERM stops it (exit status 0, whatever signal disposition it inherited)."""

import asyncio
import logging
import signal
import socket
from typing import Optional

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from mnist_hydra.inference.loading import DEFAULT_MAX_PARAMETERS
from mnist_hydra.serving.app import create_app
from mnist_hydra.serving.classifier import Classifier
from mnist_hydra.serving.collect import Collector
from mnist_hydra.serving.limits import Limits

log = logging.getLogger(__name__)


def serve(
    sock: socket.socket,
    ckpt_path,
    limits: Limits,
    trust_run_code: bool = False,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
    collector: Optional[Collector] = None,
) -> None:
    """Load the run's model, then serve on `sock` until Ctrl+C or SIGTERM."""
    classifier = Classifier(ckpt_path, trust_run_code, max_parameters)
    app = create_app(classifier, limits, collector)
    host, port = sock.getsockname()[:2]
    if "*" in limits.hosts:
        log.warning(
            "host=%s: every machine that reaches this one may use the server, with no authentication", host
        )
    config = uvicorn.Config(
        app,
        log_config=None,  # uvicorn logs through Hydra's logging (console and the run's log file)
        timeout_graceful_shutdown=5,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=min(5, limits.timeout),
        http=_with_head_deadline(limits.timeout),
    )
    # Ctrl+C and SIGTERM stop the server cleanly (uvicorn takes them while it serves, then raises
    # them again): here they always end in KeyboardInterrupt, even where the parent process had
    # set SIGINT to be ignored, which would otherwise make the exit status depend on the parent.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    address = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    what = (
        classifier.run.folder
        if len(classifier.members) == 1
        else f"{classifier.source} ({len(classifier.members)} runs as one ensemble)"
    )
    print(f"Serving {what} at {address}  (Ctrl+C stops)", flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    log.info("Stopped")


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _with_head_deadline(timeout: float) -> type:
    class HeadDeadlineH11Protocol(H11Protocol):
        """uvicorn's HTTP/1.1 with a deadline on every moment the connection is not in the middle of
        an answer: from its start, or from its last answer, the next request's head must have arrived
        within `timeout`, or the connection is closed, whatever state the client left it in (half its
        headers sent a byte at a time, or the rest of a body the answer did not need, trickling in).
        uvicorn's own keep-alive timeout restarts at every byte; h11's IDLE state is not the only
        one a silent client can hold. While an answer is made, the app's own deadline (a body within
        `timeout` of its head: 408) applies."""

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm_deadline()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._answering():  # a request's head has arrived: its answer is being made
                self._deadline.cancel()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_deadline()

        def connection_lost(self, exc) -> None:
            self._deadline.cancel()
            super().connection_lost(exc)

        def _answering(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm_deadline(self) -> None:
            if getattr(self, "_deadline", None) is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout, self._too_slow)

        def _too_slow(self) -> None:
            if not self._answering() and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineH11Protocol
