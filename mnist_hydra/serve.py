"""Try a trained model in the browser: a page to draw on, and a prediction API.

    python -m mnist_hydra.serve ckpt_path=<run folder or model.keras>   (mnist-hydra-serve)

Prints the address to open (http://127.0.0.1:8000/ by default), then serves until Ctrl+C.
The API: POST /predict, GET /model, GET /health (mnist_hydra/serving/app.py; README: Serving).
"""

import logging
import socket

import hydra
from omegaconf import DictConfig

from mnist_hydra.config import register_schemas
from mnist_hydra.errors import ConfigError

register_schemas()
log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads, so that a taken port fails at once."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port={port}: a port is 1 to 65535, or 0 for any free one")
    try:
        family, kind, protocol, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # The protocol given, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
        # say IPPROTO_TCP, and with Nagle on, a kept-alive connection waits ~40 ms a response.
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise ConfigError(
            f"cannot listen on host={host} port={port} ({error.strerror or error}): "
            f"choose another port, or port=0 for any free one"
        ) from None
    return sock


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    if cfg.max_bytes < 1:
        raise ConfigError(f"max_bytes={cfg.max_bytes}: must be at least 1")
    sock = listening_socket(cfg.host, cfg.port)

    import uvicorn

    from mnist_hydra.inference.checkpoints import ckpt_path_of
    from mnist_hydra.serving.app import create_app
    from mnist_hydra.serving.classifier import Classifier

    classifier = Classifier(ckpt_path_of(cfg))
    app = create_app(classifier, cfg.max_bytes)
    host, port = sock.getsockname()[:2]
    address = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    print(f"Serving {classifier.run.folder} at {address}  (Ctrl+C stops)", flush=True)
    # log_config=None: uvicorn logs through Hydra's logging (console and the run's log file).
    uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=5)).run(sockets=[sock])


if __name__ == "__main__":
    main()
