"""Try a trained model in the browser: a page to draw on, and a prediction API.

    python -m mnist_hydra.serve ckpt_path=<run folder or model.keras>   (mnist-hydra-serve)

Prints the address to open (http://127.0.0.1:8000/ by default), then serves until Ctrl+C.
The API: POST /predict, GET /model, GET /health (mnist_hydra/serving/app.py; README: Serve);
with collect_dir=<folder>, POST /collect keeps corrected drawings there (serving/collect.py).
"""

import logging
import socket
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mnist_hydra.config.schema import register_schemas
from mnist_hydra.config.validate import validate_serve
from mnist_hydra.console import tensorflow_start_quieted
from mnist_hydra.errors import ConfigError
from mnist_hydra.serving.collect import Collector
from mnist_hydra.serving.limits import Limits, allowed_hosts
from mnist_hydra.trained_runs import locate_runs

register_schemas()
log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads, so that a taken port fails at once."""
    try:
        family, kind, protocol, *_ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # The protocol given, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
        # say IPPROTO_TCP, and with Nagle on, a kept-alive connection waits ~40 ms a response.
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening from here on: a client that connects once "Serving ... at" is printed waits in
        # the queue until uvicorn takes it, rather than being refused (uvicorn listens again, later).
        sock.listen(2048)
    except OSError as error:
        raise ConfigError(
            f"cannot listen on host={host} port={port} ({error.strerror or error}): "
            f"choose another port, or port=0 for any free one"
        ) from None
    return sock


@hydra.main(version_base="1.3", config_path="pkg://mnist_hydra.conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    validate_serve(cfg)
    sock = listening_socket(cfg.host, cfg.port)
    limits = Limits(
        allowed_hosts(cfg.host), cfg.max_bytes, cfg.max_pixels, cfg.timeout, cfg.decoders, cfg.max_connections
    )
    if "*" in limits.hosts:
        log.warning(
            "host=%s: any machine that reaches this one may use the server, with no authentication", cfg.host
        )
    runs, _ = locate_runs(cfg.ckpt_path, cfg.trust_run_code)  # read as data: a refusal needs no TensorFlow
    collector = None
    if cfg.collect_dir is not None:
        collector = Collector(
            Path(cfg.collect_dir).expanduser(), runs[0].class_names, cfg.collect_max_per_label
        )
        log.info("Corrected drawings go into %s (collect_dir)", collector.folder)
    with tensorflow_start_quieted():  # its start-up notices are not the user's concern
        from mnist_hydra.serving.server import serve  # TensorFlow loads here

    serve(sock, cfg.ckpt_path, limits, cfg.trust_run_code, cfg.max_parameters, collector)


if __name__ == "__main__":
    main()
