"""Router cost per webhook and throughput against a direct call, nginx and today's router.

    python bench/router_bench.py [--seconds 5] [--rate 1000] [--baseline-rev 65456bf]

Starts an embedded broker, nginx as the upstream (``return 200``), nginx ``split_clients`` as
the reference router, the router with ``processes = 1`` and with ``processes = "auto"`` (one
per core), and the baseline: the aiohttp router of git revision ``--baseline-rev`` (extracted
with ``git archive`` and run from that tree; ``--baseline-rev ""`` skips it). Then:
1. closed loop with wrk at 1, 16 and 64 connections: req/s and p50/p99 of each target, the
   routers' CPU per webhook (user + system of the router's processes over the run);
2. open loop at ``--rate`` req/s: p50/p99 direct and through each router, the p99 added;
3. the broker stopped (events go to the on-disk spool: ``buffer_max_bytes`` is 256 KiB here):
   the routers again at 16 and 64 connections; then the broker back and, once the spools are
   delivered, the routers once more: the throughput kept is the outage's against the mean of
   before and after (the machine's speed drifts over minutes; the bracket cancels it).
The routers run on the interpreter that runs the bench: start it from a virtualenv of a
PGO-built CPython (Debian's, the official Docker image's) to measure that build.
Every line carries the 1-minute load average: everything shares the machine's cores, so the
load generator, the upstream, the routers and the broker (and anything else running) compete.
Targets (issue 14): <= 100 us CPU per webhook, >= 4x the baseline, >= 0.35x nginx per process,
p99 added <= 2 ms at 1,000 req/s, a broker outage costs <= 20 % of throughput.
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
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import httptools
import orjson
import psutil
import uvloop

from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import EmbeddedBroker, free_port

TOPIC = "webhook-routing-events"

BODY = (b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":'
        b'{"messages":[{"from":"4915550001","text":{"body":"hallo"}}]}}]}]}')

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
    if "Non-2xx" in out or "Socket errors" in out:
        print("    wrk: " + " ".join(line.strip() for line in out.splitlines()
                                   if "Non-2xx" in line or "Socket errors" in line))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, _wrk_ms(out, "50%"), _wrk_ms(out, "99%")


def _wrk_ms(out: str, label: str) -> float:
    value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


class _Client(asyncio.Protocol):
    """One keep-alive connection of the open-loop load: one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))


async def open_loop(url: str, rate: float, seconds: float) -> tuple[float, float]:
    """p50, p99 ms at a fixed rate, timed from each request's scheduled start (so a stall
    counts); a lean client on raw connections, so the load generator costs little."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Content-Type: application/json\r\nX-Hub-Signature-256: sha256=0123456789abcdef"
               f"\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    loop = asyncio.get_running_loop()
    idle: list[_Client] = []
    latencies: list[float] = []

    failures = 0

    async def one(scheduled: float) -> None:
        nonlocal failures
        while idle and idle[-1].closed:
            idle.pop()
        if idle:
            client = idle.pop()
        else:
            _, client = await loop.create_connection(_Client, host, port)
        client.waiter = loop.create_future()
        assert client.transport is not None
        try:
            client.transport.write(request)
            await client.waiter
        except (ConnectionError, RuntimeError):
            failures += 1  # the server closed it: counted, the latency is not
            return
        latencies.append((time.perf_counter() - scheduled) * 1000)
        idle.append(client)

    tasks = []
    start = time.perf_counter()
    total = int(rate * seconds)
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    for client in idle:
        if client.transport is not None:
            client.transport.close()
    if failures:
        print(f"    open loop: {failures} requests failed at the connection")
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49], cuts[98]


REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


@dataclass
class Target:
    name: str
    url: str
    proc: subprocess.Popen[bytes] | None = None  # a router: its CPU is measured

    def cpu_s(self) -> float:
        if self.proc is None:
            return 0.0
        root = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
        return total


def router_toml(prefix: Path, name: str, port: int, upstream_port: int, extra: str) -> Path:
    config = prefix / f"router-{name}.toml"
    config.write_text(f"""[router]
host = "127.0.0.1"
port = {port}
legacy_url = "http://127.0.0.1:{upstream_port}/webhook/{{domain}}"
unified_url = "http://127.0.0.1:{upstream_port}/webhook/{{domain}}"
spool_dir = "{prefix / f'spool-{name}'}"
buffer_max_bytes = 262144
{extra}
""")
    return config


def baseline_tree(prefix: Path, rev: str) -> Path:
    """Revision ``rev`` laid out as the installed ``trafficlight`` package, to run from."""
    tree = prefix / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "router", "streams",
                              "migrations", "trafficlight"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    for part in ("router", "streams", "migrations"):
        (tree / part).rename(tree / "trafficlight" / part)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="per closed-loop run")
    parser.add_argument("--rate", type=float, default=1000, help="open-loop req/s")
    parser.add_argument("--repeat", type=int, default=1,
                        help="closed-loop rounds; the ratios use each figure's median")
    parser.add_argument("--baseline-rev", default="65456bf",
                        help="git revision of the router to compare with (the last aiohttp one)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install -y {tool})")

    with contextlib.ExitStack() as stack:
        prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="router-bench-")))
        script = prefix / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=BODY.decode()))
        upstream_port, split_port = free_port(), free_port()
        stack.enter_context(nginx(prefix, "upstream",
                                  NGINX_UPSTREAM.format(port=upstream_port), upstream_port))
        stack.enter_context(nginx(prefix, "split", NGINX_SPLIT.format(
            port=split_port, upstream=upstream_port), split_port))
        broker = EmbeddedBroker().start()
        stack.callback(broker.stop)
        asyncio.run(ensure_topics(broker.bootstrap_servers, {TOPIC: 2}))
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        cores = len(os.sched_getaffinity(0))
        targets = [Target("direct", f"http://127.0.0.1:{upstream_port}/webhook/jobs"),
                   Target("nginx", f"http://127.0.0.1:{split_port}/webhook/jobs")]
        routers = [("router-1", "processes = 1", None),
                   (f"router-{cores}", 'processes = "auto"', None)]
        if args.baseline_rev:
            routers.append(("baseline", "", baseline_tree(prefix, args.baseline_rev)))
        for name, extra, tree in routers:
            port = free_port()
            config = router_toml(prefix, name, port, upstream_port, extra)
            child_env = dict(env, PYTHONPATH=str(tree)) if tree else env
            proc = stack.enter_context(process(
                [sys.executable, "-m", "trafficlight.cli", "router", "--config", str(config)],
                port, env=child_env, cwd=str(tree or prefix)))
            targets.append(Target(name, f"http://127.0.0.1:{port}/webhook/jobs", proc))
        print(f"python {sys.version.split()[0]} ({sys.executable}), {cores} cores; "
              f"baseline: git {args.baseline_rev or '-'}; upstream and reference: nginx")
        run(targets, script, args.seconds, args.rate, broker, args.repeat)


def closed_loop(targets: list[Target], script: Path, seconds: float,
                connections: tuple[int, ...]) -> dict[tuple[str, int], float]:
    print(f"{'target':<10} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU us/webhook':>15}")
    rates: dict[tuple[str, int], float] = {}
    for conns in connections:
        for target in targets:
            cpu_before = target.cpu_s()
            req_s, p50, p99 = wrk(target.url, conns, seconds, script)
            cpu_us = 1e6 * (target.cpu_s() - cpu_before) / (req_s * max(1, round(seconds)))
            rates[target.name, conns] = req_s
            shown_cpu = f"{cpu_us:15.0f}" if target.proc is not None else f"{'':15}"
            print(f"{target.name:<10} {conns:>5} {req_s:>9.0f} {p50:>8.2f} {p99:>8.2f} "
                  f"{shown_cpu}   {load()}")
    return rates


def median_rates(rounds: list[dict[tuple[str, int], float]]) -> dict[tuple[str, int], float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def run(targets: list[Target], script: Path, seconds: float, rate: float,
        broker: EmbeddedBroker, repeat: int) -> None:
    for target in targets:
        wrk(target.url, 16, 1, script)  # warm up connections and code paths
    routers = [t for t in targets if t.proc is not None]
    rounds = []
    for n in range(repeat):
        print(f"\nclosed loop (wrk, {seconds:.0f} s each), round {n + 1} of {repeat}")
        rounds.append(closed_loop(targets, script, seconds, (1, 16, 64)))
    rates = median_rates(rounds)
    print("\nratios of the median req/s")
    for conns in (1, 16, 64):
        parts = [f"conns {conns:>2}:"]
        parts += [f"{r.name}/nginx {rates[r.name, conns] / rates['nginx', conns]:.2f}"
                  for r in routers]
        if ("baseline", conns) in rates:
            parts += [f"{r.name}/baseline {rates[r.name, conns] / rates['baseline', conns]:.2f}"
                      for r in routers if r.name != "baseline"]
        print("  ".join(parts))

    print(f"\nopen loop at {rate:.0f} req/s ({2 * seconds:.0f} s each, "
          "latency from the scheduled start)")
    figures: dict[str, tuple[float, float]] = {}
    for target in [t for t in targets if t.name != "nginx"]:
        figures[target.name] = uvloop.run(open_loop(target.url, rate, 2 * seconds))
        p50, p99 = figures[target.name]
        added = ("" if target.name == "direct"
                 else f"  adds p99 {p99 - figures['direct'][1]:+.2f} ms")
        print(f"{target.name:<10} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms{added}   {load()}")

    print("\nbroker stopped: events go to the disk spool")
    broker.stop()
    time.sleep(3)
    for router in routers:
        wrk(router.url, 16, 2, script)  # fill the 256 KiB memory buffer: spooling from here
    down = median_rates([closed_loop(routers, script, seconds, (16, 64))
                         for _ in range(repeat)])

    print("\nbroker back: the routers again, once their spools are delivered")
    broker.start()
    asyncio.run(ensure_topics(broker.bootstrap_servers, {TOPIC: 2}))
    for router in routers:
        wait_until_delivered(router.url)
    after = median_rates([closed_loop(routers, script, seconds, (16, 64))
                          for _ in range(repeat)])
    # Against the mean of before and after: the machine's speed drifts over the minutes
    # between them, for every target alike; bracketing keeps that drift out of the ratio.
    for conns in (16, 64):
        kept = {r.name: down[r.name, conns] / statistics.mean(
            (rates[r.name, conns], after[r.name, conns])) for r in routers}
        print(f"conns {conns:>2}: throughput kept with the broker down: "
              + "  ".join(f"{name} {ratio:.2f}" for name, ratio in kept.items()))


def wait_until_delivered(url: str, timeout_s: float = 120) -> None:
    """Until ``/healthz`` says nothing is spooled (asked a few times: with several processes
    each answer is one process's)."""
    health = url.split("/webhook/", 1)[0] + "/healthz"
    deadline, clear = time.monotonic() + timeout_s, 0
    while clear < 8 and time.monotonic() < deadline:
        with urllib.request.urlopen(health, timeout=5) as answer:
            clear = clear + 1 if orjson.loads(answer.read())["events_spooled"] == 0 else 0
        time.sleep(0.25)
    if clear < 8:
        print(f"    {health}: spool not delivered after {timeout_s:.0f} s; "
              "the figures after the outage include its delivery")


if __name__ == "__main__":
    main()
