"""The prediction server with hostile requests mixed into its honest ones: what it costs.

Starts `python -m mnist_hydra.serve` on 127.0.0.1 (a free port), then runs two phases of the
same honest load (MNIST test digits from concurrent clients, each answer checked against the
one its image got alone): first alone, then with hostile clients sending at the same time
decompression bombs (a few kilobytes declaring more pixels than the limit), the largest real images
the server takes (random noise just under its pixel limit: the most a request can make it
decode), text, cross-site posts, a foreign Host, and connections that send half a head and
wait. The honest load goes round its images until every hostile request has been answered. It
prints, per phase, the honest requests' latency percentiles, how every hostile
request was answered, and the server process's peak resident memory (sampled every 50 ms).
All traffic goes to 127.0.0.1 and stops by itself.

    python benchmarks/serve_hostile.py --ckpt <run folder> [--requests 200] [--clients 10] [--hostile 60]
"""

import argparse
import io
import re
import socket
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from serve_load import nodelay_transport, percentile, start_server, test_images  # noqa: E402

from mnist_hydra.machine import reported_flags  # noqa: E402


def hostile_requests(count: int, max_pixels: int) -> list[tuple[str, dict, bytes]]:
    """(kind, headers, body) of `count` hostile requests, the kinds taking turns."""
    side = int(max_pixels**0.5) - 1
    noise, bomb = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side), np.uint8)).save(
        noise, format="PNG"
    )
    Image.new("L", (side + 100, side + 100)).save(bomb, format="PNG")  # a few KB declaring more pixels
    kinds = [
        ("bomb", {}, bomb.getvalue()),
        ("largest image", {}, noise.getvalue()),
        ("text", {}, b"not an image at all" * 100),
        ("cross-site", {"Origin": "http://elsewhere.example"}, noise.getvalue()),
        ("foreign host", {"Host": "rebound.example"}, noise.getvalue()),
        ("half a head", {}, b""),
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def peak_memory(pid: int, stop: threading.Event, peaks: list) -> None:
    while not stop.wait(0.05):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        peaks.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024)


def half_a_head(port: int) -> str:
    """A connection that sends part of its head, then waits to be closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as slow:
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        closed = slow.recv(100) == b""
        return f"closed after {time.monotonic() - started:.0f} s" if closed else "answered"


def run_phase(http, address: str, bodies, alone, clients: int, hostile: list) -> dict:
    import httpx

    port = int(re.search(r":(\d+)/", address).group(1))

    def honest(index: int):
        start = time.perf_counter()
        answer = http.post("predict", content=bodies[index])
        matches = answer.status_code == 200 and np.allclose(
            answer.json()["probabilities"], alone[index]["probabilities"], atol=1e-6
        )
        return matches, 1000 * (time.perf_counter() - start)

    def attack(request):
        kind, headers, body = request
        if kind == "half a head":
            return kind, half_a_head(port)
        with httpx.Client(base_url=address, timeout=120) as own:
            return kind, str(own.post("predict", content=body, headers=headers).status_code)

    # The attacks run at once (half-sent heads hold their connections), and the honest load goes
    # round the images until every attack has been answered, so that all of it meets them.
    with ThreadPoolExecutor(max_workers=clients) as pool, ThreadPoolExecutor(max_workers=16) as attackers:
        attacks = [attackers.submit(attack, request) for request in hostile]
        start, results = time.perf_counter(), []
        while not results or not all(future.done() for future in attacks):
            results += pool.map(honest, range(len(bodies)))
        wall = time.perf_counter() - start
        answers = Counter(future.result() for future in attacks)
    latencies = [ms for _, ms in results]
    return {
        "matches": sum(ok for ok, _ in results),
        "count": len(results),
        "rate": len(results) / wall,
        "latency": [percentile(latencies, share) for share in (0.5, 0.9, 0.99)] + [max(latencies)],
        "hostile": answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a run folder or its model.keras")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--hostile", type=int, default=60)
    parser.add_argument("--max-pixels", type=int, default=4_000_000, help="serve's max_pixels")
    args = parser.parse_args()
    import httpx

    bodies, _ = test_images(args.requests)
    server, address = start_server(args.ckpt, "serve-hostile", "timeout=5", f"max_pixels={args.max_pixels}")
    stop, peaks = threading.Event(), []
    try:
        threading.Thread(target=peak_memory, args=(server.pid, stop, peaks), daemon=True).start()
        transport = nodelay_transport(args.clients)
        with httpx.Client(base_url=address, timeout=120, transport=transport) as http:
            alone = [http.post("predict", content=body).json() for body in bodies]
            phases = {}
            for name, hostile in (
                ("honest only", []),
                ("with hostile", hostile_requests(args.hostile, args.max_pixels)),
            ):
                peaks.clear()
                phases[name] = run_phase(http, address, bodies, alone, args.clients, hostile)
                phases[name]["peak"] = max(peaks, default=0)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)

    print(f"CPU flags: {' '.join(reported_flags())}")
    print(
        f"{args.requests} honest requests from {args.clients} clients; serve max_pixels={args.max_pixels:,}"
    )
    for name, phase in phases.items():
        p50, p90, p99, most = phase["latency"]
        answered = f"{phase['matches']} of {phase['count']} answered as alone"
        print(f"  {name}: {answered}, {phase['rate']:.0f} requests/s")
        print(f"    latency ms: p50 {p50:.1f}, p90 {p90:.1f}, p99 {p99:.1f}, max {most:.1f}")
        print(f"    server's peak resident memory: {phase['peak'] / 2**20:.0f} MiB")
        for (kind, answer), count in sorted(phase["hostile"].items()):
            print(f"    hostile {kind}: {count} x {answer}")


if __name__ == "__main__":
    main()
