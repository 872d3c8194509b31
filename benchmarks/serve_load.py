"""The prediction server under load: requests per second and latency percentiles.

Starts `python -m mnist_hydra.serve` on a free port, sends each of N MNIST test images once
(the answers to compare against), then sends them again from C concurrent clients, and
checks that every concurrent answer is the one the image got alone. Then, in this process,
times the parts of one request (preparing the image, the model call) and the model call on
a batch, which is what decides between serializing model calls and batching them.

    python benchmarks/serve_load.py --ckpt <run folder> [--requests 200] [--clients 20]
"""

import argparse
import io
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from mnist_hydra.machine import reported_flags  # noqa: E402


def test_images(count: int) -> tuple[list[bytes], np.ndarray]:
    from layer_times import compose  # benchmarks/ is on the path of its scripts

    from mnist_hydra.building import build

    _, test = build(
        "dataset", compose("tutorial", []).dataset
    ).load()  # the shipped MNIST, read as training reads it
    bodies = []
    for pixels in test.images[:count, ..., 0]:
        out = io.BytesIO()
        Image.fromarray(255 - pixels).save(out, format="PNG")  # dark on light, as people write
        bodies.append(out.getvalue())
    return bodies, test.labels[:count]


def start_server(ckpt: str, name: str, *overrides: str) -> tuple[subprocess.Popen, str]:
    """`python -m mnist_hydra.serve` on a free port of 127.0.0.1, and the address it prints
    (its stdout, then its access log, goes to /tmp/<name>.log)."""
    log = open(f"/tmp/{name}.log", "w+")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnist_hydra.serve",
            f"ckpt_path={ckpt}",
            "port=0",
            *overrides,
            f"hydra.run.dir=/tmp/{name}",
        ],
        stdout=log,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    address = None
    while address is None and server.poll() is None:
        time.sleep(0.5)
        log.seek(0)
        address = next(
            (m.group(1) for m in re.finditer(r"^Serving .* at (http://\S+/)", log.read(), re.M)), None
        )
    if address is None:
        raise SystemExit(f"the server stopped before printing its address: see /tmp/{name}.log")
    return server, address


def nodelay_transport(clients: int):
    """TCP_NODELAY, as browsers and curl set it: without it, httpx's request (headers and body
    written apart) waits out the server's delayed ACK, about 40 ms a request here."""
    import httpx

    return httpx.HTTPTransport(
        limits=httpx.Limits(max_connections=clients),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a run folder or its model.keras")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    import httpx

    bodies, labels = test_images(args.requests)
    server, address = start_server(args.ckpt, "serve-load")
    try:
        transport = nodelay_transport(args.clients)
        with httpx.Client(base_url=address, timeout=120, transport=transport) as http:
            alone, alone_seconds = [], []
            for body in bodies:
                start = time.perf_counter()
                alone.append(http.post("predict", content=body).json())
                alone_seconds.append(time.perf_counter() - start)

            def ask(index: int) -> tuple[int, int, dict, float]:
                start = time.perf_counter()
                answer = http.post("predict", content=bodies[index])
                return index, answer.status_code, answer.json(), time.perf_counter() - start

            start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.clients) as pool:
                results = list(pool.map(ask, range(len(bodies))))
            wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)

    correct = sum(
        status == 200 and np.allclose(answer["probabilities"], alone[index]["probabilities"], atol=1e-6)
        for index, status, answer, _ in results
    )
    accuracy = np.mean([int(answer["predicted"]) == label for answer, label in zip(alone, labels)])
    latencies = [1000 * seconds for *_, seconds in results]
    p50, p90, p99 = (percentile(latencies, share) for share in (0.5, 0.9, 0.99))
    print(f"CPU flags: {' '.join(reported_flags())}")
    print(f"{args.requests} requests from {args.clients} concurrent clients, {args.ckpt}")
    print(f"  answered as when sent alone: {correct} of {len(results)}")
    print(f"  test accuracy of the answers: {accuracy:.2%}")
    print(f"  {len(results) / wall:.1f} requests/s ({wall:.2f} s in all)")
    print(f"  latency ms: p50 {p50:.1f}, p90 {p90:.1f}, p99 {p99:.1f}, max {max(latencies):.1f}")
    alone_rate, alone_median = 1 / statistics.mean(alone_seconds), 1000 * statistics.median(alone_seconds)
    print(f"  one client: {alone_rate:.1f} requests/s, median {alone_median:.1f} ms")
    where_the_time_goes(args.ckpt, bodies, args.clients)


def where_the_time_goes(ckpt: str, bodies: list[bytes], clients: int) -> None:
    """Preparation against the model call, and what a batch of `clients` images would save."""
    from mnist_hydra.serving.classifier import Classifier

    classifier = Classifier(ckpt)
    model = classifier.run.model  # the first member of an ensemble: the cost of one model call
    prepare_seconds, model_seconds = [], []
    for body in bodies[:50]:
        start = time.perf_counter()
        prepared = classifier.dataset.prepare(io.BytesIO(body), "image")
        middle = time.perf_counter()
        model.predict_on_batch(prepared[np.newaxis])
        prepare_seconds.append(middle - start)
        model_seconds.append(time.perf_counter() - middle)
    batch = np.stack([classifier.dataset.prepare(io.BytesIO(body), "image") for body in bodies[:clients]])
    model.predict_on_batch(batch)
    start = time.perf_counter()
    for _ in range(10):
        model.predict_on_batch(batch)
    per_image = (time.perf_counter() - start) / 10 / clients
    print("  in process, per image (median of 50):")
    print(f"    preparing it (predict's code): {1000 * statistics.median(prepare_seconds):.2f} ms")
    print(f"    the model call, one image:     {1000 * statistics.median(model_seconds):.2f} ms")
    print(f"    the model call, in a batch of {clients}: {1000 * per_image:.2f} ms")


if __name__ == "__main__":
    main()
