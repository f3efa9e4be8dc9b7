"""Router overhead against a direct call and against nginx ``split_clients``, in one run.

    python bench/router_bench.py [--seconds 5] [--rate 1000]

Starts an embedded broker, a local upstream (nginx returning 200 when nginx is installed,
else a small aiohttp app), ``trafficlight router`` in front of it, and nginx with
``split_clients`` as the reference router. Then:
1. closed loop with wrk at 1, 16 and 64 connections: req/s and p50/p99 for each target;
2. open loop at ``--rate`` req/s (latency from the scheduled send time, so a stall counts):
   p50/p99 direct and through the router, and the p99 the router adds.
Prints ratios measured in this run; absolute figures depend on the machine. Everything shares
the machine's cores (here 2), so load generator, upstream, router and broker compete.
Targets (issue 3): added p99 <= 2 ms at 1,000 req/s; router throughput >= 50% of nginx's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import EmbeddedBroker, free_port

BODY = (b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":'
        b'{"messages":[{"from":"4915550001","text":{"body":"hallo"}}]}}]}]}')

AIOHTTP_UPSTREAM = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_route("*", "/webhook/{domain}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx-{name}.pid;
error_log {prefix}/error-{name}.log warn;
user root;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body-{name};
    proxy_temp_path {prefix}/proxy-{name};
    {body}
}}
"""

NGINX_UPSTREAM = """
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
"""

NGINX_SPLIT = """
    upstream legacy {{ server 127.0.0.1:{upstream}; keepalive 128; }}
    upstream unified {{ server 127.0.0.1:{upstream}; keepalive 128; }}
    split_clients "${{http_x_routing_key}}" $target {{ 10% unified; * legacy; }}
    server {{
        listen 127.0.0.1:{port};
        location /webhook/ {{
            proxy_pass http://$target;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Routed-To $target;
        }}
    }}
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = "sha256=0123456789abcdef"
"""


def wait_for_port(port: int, timeout_s: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


@contextlib.contextmanager
def process(argv: list[str], port: int, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **kwargs)  # type: ignore[call-overload]
    try:
        wait_for_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)


@contextlib.contextmanager
def nginx(prefix: Path, name: str, body: str, port: int) -> Iterator[None]:
    conf = prefix / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, name=name, body=body))
    with process(["nginx", "-c", str(conf), "-p", str(prefix)], port):
        yield


def wrk(url: str, connections: int, seconds: float, script: Path) -> tuple[float, float, float]:
    """req/s, p50 ms, p99 ms of a closed-loop wrk run."""
    duration = f"-d{max(1, round(seconds))}s"
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", duration, "--latency",
                          "-s", str(script), url], capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, _wrk_ms(out, "50%"), _wrk_ms(out, "99%")


def _wrk_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def open_loop(url: str, rate: float, seconds: float) -> tuple[float, float]:
    """p50, p99 ms at a fixed rate, timed from each request's scheduled start."""
    latencies: list[float] = []
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        async def one(scheduled: float) -> None:
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        start = time.perf_counter()
        total = int(rate * seconds)
        for n in range(total):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="per closed-loop run")
    parser.add_argument("--rate", type=float, default=1000, help="open-loop req/s")
    parser.add_argument("--router-processes", type=int, default=1,
                        help="router processes sharing the port (reuse_port)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk): nothing to measure")
    has_nginx = shutil.which("nginx") is not None
    if not has_nginx:
        print("nginx is not installed (Debian: apt-get install -y nginx): skipping the nginx "
              "reference; the upstream is a small aiohttp app")

    with contextlib.ExitStack() as stack:
        prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="router-bench-")))
        script = prefix / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=BODY.decode()))
        upstream_port, router_port, split_port = free_port(), free_port(), free_port()
        if has_nginx:
            stack.enter_context(nginx(prefix, "upstream",
                                      NGINX_UPSTREAM.format(port=upstream_port), upstream_port))
            stack.enter_context(nginx(prefix, "split", NGINX_SPLIT.format(
                port=split_port, upstream=upstream_port), split_port))
        else:
            stack.enter_context(process([sys.executable, "-c", AIOHTTP_UPSTREAM,
                                         str(upstream_port)], upstream_port))
        broker = EmbeddedBroker().start()
        stack.callback(broker.stop)
        asyncio.run(ensure_topics(broker.bootstrap_servers, {"webhook-routing-events": 2}))
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        for n in range(args.router_processes):
            config = prefix / f"router-{n}.toml"
            config.write_text(f"""[router]
host = "127.0.0.1"
port = {router_port}
legacy_url = "http://127.0.0.1:{upstream_port}/webhook/{{domain}}"
unified_url = "http://127.0.0.1:{upstream_port}/webhook/{{domain}}"
spool_dir = "{prefix / f'spool-{n}'}"
reuse_port = {str(args.router_processes > 1).lower()}
""")
            stack.enter_context(process([sys.executable, "-c", "from trafficlight.cli import "
                                         "main; main()", "router", "--config", str(config)],
                                        router_port, env=env))
        print(f"{args.router_processes} router process(es), upstream: "
              f"{'nginx' if has_nginx else 'aiohttp'}")

        targets = {"direct": f"http://127.0.0.1:{upstream_port}/webhook/jobs",
                   "router": f"http://127.0.0.1:{router_port}/webhook/jobs"}
        if has_nginx:
            targets["nginx"] = f"http://127.0.0.1:{split_port}/webhook/jobs"
        run(targets, script, args.seconds, args.rate)


def run(targets: dict[str, str], script: Path, seconds: float, rate: float) -> None:
    for url in targets.values():
        wrk(url, 16, 1, script)  # warm up connections and code paths
    print(f"\nclosed loop (wrk, {seconds:.0f} s each)")
    print(f"{'target':<8} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    rates: dict[tuple[str, int], float] = {}
    for connections in (1, 16, 64):
        for name, url in targets.items():
            req_s, p50, p99 = wrk(url, connections, seconds, script)
            rates[name, connections] = req_s
            print(f"{name:<8} {connections:>5} {req_s:>9.0f} {p50:>8.2f} {p99:>8.2f}")
    for connections in (1, 16, 64):
        line = (f"conns {connections:>2}: router/direct throughput "
                f"{rates['router', connections] / rates['direct', connections]:.2f}")
        if "nginx" in targets:
            versus_nginx = rates["router", connections] / rates["nginx", connections]
            line += f", router/nginx {versus_nginx:.2f} (target >= 0.50)"
        print(line)

    print(f"\nopen loop at {rate:.0f} req/s ({2 * seconds:.0f} s each, "
          "latency from the scheduled start)")
    figures = {name: asyncio.run(open_loop(url, rate, 2 * seconds))
               for name, url in targets.items()}
    for name, (p50, p99) in figures.items():
        print(f"{name:<8} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    added_p50 = figures["router"][0] - figures["direct"][0]
    added_p99 = figures["router"][1] - figures["direct"][1]
    print(f"router adds p50 {added_p50:+.2f} ms, p99 {added_p99:+.2f} ms (target p99 <= 2 ms); "
          f"router/direct p99 ratio {figures['router'][1] / figures['direct'][1]:.2f}")
    if "nginx" in figures:
        print(f"nginx adds p99 {figures['nginx'][1] - figures['direct'][1]:+.2f} ms")


if __name__ == "__main__":
    main()
