"""Load on the demo: N concurrent gradio_client clients × M `/predict` requests each; all must succeed.

Reports per-request latency (upload + queue wait + scoring + answer) p50 / p95 / max and the throughput. The
app runs in this process on 127.0.0.1 unless `--url` names one already running (e.g. a Space or `python app.py`).
Without `--model`, a random-weight PiN-CLIP of `--shape` is built: weights do not change the cost.

    python bench/bench_app_load.py [--model PATH] [--shape vit-b-16] [--clients 8] [--requests 10]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from common import CACHE_DIR, REPO_ROOT, load_average, machine_facts, positive_int, random_clip, saved_pinclip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_session(url: str, images: list[str], requests: int, offset: int) -> list[float]:
    """One client: `requests` sequential predictions; returns each latency in seconds (raises on any failure)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    latencies = []
    for index in range(requests):
        image = images[(offset + index) % len(images)]
        start = time.perf_counter()
        label, _, _ = client.predict(handle_file(image), api_name="/predict")
        latencies.append(time.perf_counter() - start)
        if {item["label"] for item in label["confidences"]} != {"real", "fake"}:
            raise RuntimeError(f"unexpected answer {label}")
    return latencies


def run_load(url: str, images: list[str], clients: int, requests: int) -> tuple[list[float], int, float]:
    """(latencies of successful requests, failed clients, wall time) of `clients` clients run concurrently."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_session, url, images, requests, offset) for offset in range(clients)]
    wall = time.perf_counter() - start
    latencies, failures = [], 0
    for future in futures:
        if future.exception() is not None:
            failures += 1
            print(f"client failed: {future.exception()!r}", file=sys.stderr)
        else:
            latencies += future.result()
    return latencies, failures, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark a running app instead of starting one")
    parser.add_argument("--model", help="model folder (default: a random-weight PiN-CLIP of --shape)")
    parser.add_argument("--shape", default="vit-b-16", help="CLIP shape of the random model (default: %(default)s)")
    parser.add_argument("--clients", type=positive_int, default=8)
    parser.add_argument("--requests", type=positive_int, default=10, help="requests per client")
    args = parser.parse_args(argv)
    images = sorted(str(path) for path in (REPO_ROOT / "assets").glob("*.png"))

    demo = None
    url = args.url
    if url is None:
        from app import build_demo, launch_kwargs

        model = args.model
        if model is None:  # a random-weight PiN-CLIP, kept with the suite's other models (was a /tmp copy per run)
            model = saved_pinclip(random_clip(args.shape), CACHE_DIR / f"pinclip-{args.shape}")
        demo = build_demo(model)
        demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs(free_port()))
        url = demo.local_url
    try:
        client_session(url, images, 1, 0)  # warm-up: first-call costs are not load
        latencies, failures, wall = run_load(url, images, args.clients, args.requests)
    finally:
        if demo is not None:
            demo.close()

    for key, value in machine_facts().items():
        print(f"{key}: {value}")
    model_text = url if args.url else args.model or f"random-weight PiN-CLIP ({args.shape})"
    total = args.clients * args.requests
    print(f"model: {model_text}")
    print(f"load average after the run: {load_average()} (other processes on the machine inflate latencies)")
    print(f"{args.clients} clients × {args.requests} requests: {len(latencies)}/{total} succeeded, {failures} clients failed")
    if latencies:
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"latency p50 {p50 * 1000:.0f} ms · p95 {p95 * 1000:.0f} ms · max {max(latencies) * 1000:.0f} ms")
        print(f"throughput {len(latencies) / wall:.1f} requests/s (wall {wall:.1f} s)")
    return 0 if len(latencies) == total else 1


if __name__ == "__main__":
    sys.exit(main())
