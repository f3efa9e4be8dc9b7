"""The router over real HTTP: verbatim forwarding, failures, bad input, one event per webhook."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import pytest
from yarl import URL

from tests.router.conftest import StartRouter
from tests.router.support import (
    REPLY_DELAY_HEADER,
    REPLY_STATUS_HEADER,
    Upstream,
    consume_events,
    consume_records,
    rollout_config,
)
from trafficlight.base.local_services import free_port
from trafficlight.router.app import new_event_id
from trafficlight.streams.events import decode_record

SIGNATURE = "sha256=6f1ed002ab5595859014ebf0951522d9a3f6e5d4b1a0c5b6c1e7e6c7a8b9c0d1"
WEBHOOK = orjson.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [
    {"value": {"messages": [{"from": "4915550001", "text": {"body": "hallo"}}]}}]}]})


async def test_a_webhook_reaches_legacy_verbatim_with_its_signature(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    response = await router.post("/webhook/jobs?source=meta", data=WEBHOOK, headers={
        "X-Hub-Signature-256": SIGNATURE, "Content-Type": "application/json",
        "User-Agent": "facebookexternalua", "X-Custom": "kept"})

    assert response.status == 200
    assert await response.text() == "legacy says 200"
    assert response.headers["X-Routed-To"] == "legacy"
    assert response.headers["X-Handled-By"] == "legacy"
    [seen] = legacy.seen
    assert (seen.method, seen.path, seen.query_string) == ("POST", "/webhook/jobs", "source=meta")
    assert seen.body == WEBHOOK
    assert seen.headers["x-hub-signature-256"] == [SIGNATURE]
    assert seen.headers["content-type"] == ["application/json"]
    assert seen.headers["user-agent"] == ["facebookexternalua"]
    assert seen.headers["x-custom"] == ["kept"]
    assert seen.headers["content-length"] == [str(len(WEBHOOK))]


async def test_hop_by_hop_headers_stay_on_their_connection(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    await router.post("/webhook/jobs", data=WEBHOOK, headers={
        "Connection": "keep-alive, X-Per-Hop", "X-Per-Hop": "1", "Proxy-Authorization": "x",
        "TE": "trailers", "X-End-To-End": "2"})
    [seen] = legacy.seen
    assert "x-per-hop" not in seen.headers
    assert "proxy-authorization" not in seen.headers
    assert "te" not in seen.headers
    assert seen.headers["x-end-to-end"] == ["2"]


async def test_at_100_percent_a_rollout_domain_goes_to_unified(
        start_router: StartRouter, legacy: Upstream, unified: Upstream) -> None:
    router = await start_router(rollout_config(100))
    response = await router.post("/webhook/property", data=WEBHOOK,
                                 headers={"X-Hub-Signature-256": SIGNATURE})
    assert response.headers["X-Routed-To"] == "unified"
    assert await response.text() == "unified says 200"
    assert [s.headers["x-hub-signature-256"] for s in unified.seen] == [[SIGNATURE]]
    assert legacy.seen == []


async def test_a_protected_domain_stays_on_legacy_at_100_percent(
        start_router: StartRouter, unified: Upstream) -> None:
    router = await start_router(rollout_config(100))
    response = await router.post("/webhook/insurance", data=WEBHOOK)
    assert response.headers["X-Routed-To"] == "legacy"
    assert unified.seen == []


async def test_the_get_challenge_goes_to_legacy_even_at_100_percent(
        start_router: StartRouter, legacy: Upstream, unified: Upstream) -> None:
    router = await start_router(rollout_config(100))
    response = await router.get(
        "/webhook/jobs?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock")
    assert response.status == 200
    assert await response.text() == "1158201444"
    assert response.headers["X-Routed-To"] == "legacy"
    [seen] = legacy.seen
    assert seen.query_string == ("hub.mode=subscribe&hub.challenge=1158201444"
                                 "&hub.verify_token=meatyhamhock")
    assert unified.seen == []


async def test_each_webhook_emits_one_event_per_spec_in_a_domain_keyed_batch(
        start_router: StartRouter, kafka_bootstrap: str, router_settings: Any) -> None:
    router = await start_router(rollout_config(100, version=42))
    answers = [await router.post(f"/webhook/{domain}", data=WEBHOOK)
               for domain in ("jobs", "jobs", "property")]
    ids = {a.headers["X-Routing-Event-Id"] for a in answers}

    records = await consume_events(kafka_bootstrap, router_settings.events_topic, 3)
    events = [event for _, batch in records for event in batch]
    assert {e["event_id"] for e in events} == ids
    assert all(key.decode() == event["domain"] for key, batch in records for event in batch)
    event = events[0]
    assert set(event) == {"event_id", "ts", "domain", "routed_to", "response_time_ms", "status",
                          "http_status", "error_message", "router_id", "config_version"}
    assert (event["routed_to"], event["status"], event["http_status"]) == ("unified", "success",
                                                                           200)
    assert event["error_message"] is None
    assert (event["router_id"], event["config_version"]) == ("router-under-test", 42)
    assert isinstance(event["ts"], float) and event["response_time_ms"] >= 0


async def test_the_workers_decoder_accepts_every_record_the_router_writes(
        start_router: StartRouter, kafka_bootstrap: str, router_settings: Any) -> None:
    router = await start_router(rollout_config(50))
    for domain in ("jobs", "insurance", "newsletter"):
        await router.post(f"/webhook/{domain}", data=WEBHOOK)
    await router.post("/webhook/jobs", data=WEBHOOK, headers={REPLY_STATUS_HEADER: "500"})
    await router.get("/webhook/jobs?hub.challenge=1")

    records = await consume_records(kafka_bootstrap, router_settings.events_topic, 5)
    decoded = [decode_record(value, now_s=time.time()) for _, value in records]
    assert [r.describe() for d in decoded for r in d.rejects] == []
    assert sum(len(d.events) for d in decoded) == 5


async def test_an_upstream_5xx_comes_back_and_is_recorded_as_an_error(
        start_router: StartRouter, kafka_bootstrap: str, router_settings: Any) -> None:
    router = await start_router(rollout_config(100))
    response = await router.post("/webhook/jobs", data=WEBHOOK,
                                 headers={REPLY_STATUS_HEADER: "503"})
    assert response.status == 503
    assert await response.text() == "unified says 503"

    [(_, [event])] = await consume_events(kafka_bootstrap, router_settings.events_topic, 1)
    assert (event["status"], event["http_status"]) == ("error", 503)
    assert event["error_message"] == "upstream unified answered 503"


async def test_an_unreachable_upstream_gets_502_and_an_error_event(
        start_router: StartRouter, kafka_bootstrap: str, router_settings: Any) -> None:
    router = await start_router(
        rollout_config(0), legacy_url=f"http://127.0.0.1:{free_port()}/webhook/{{domain}}")
    response = await router.post("/webhook/jobs", data=WEBHOOK)
    assert response.status == 502
    assert await response.text() == "upstream legacy unreachable\n"
    assert response.headers["X-Routed-To"] == "legacy"

    [(_, [event])] = await consume_events(kafka_bootstrap, router_settings.events_topic, 1)
    assert (event["status"], event["http_status"], event["routed_to"]) == ("error", None,
                                                                           "legacy")
    assert event["error_message"].startswith("upstream legacy unreachable: ")


async def test_a_slow_upstream_gets_504_after_the_timeout_and_an_error_event(
        start_router: StartRouter, kafka_bootstrap: str, router_settings: Any) -> None:
    router = await start_router(rollout_config(0), upstream_timeout_s=0.2)
    response = await router.post("/webhook/jobs", data=WEBHOOK, headers={REPLY_DELAY_HEADER: "2"})
    assert response.status == 504
    assert await response.text() == "upstream legacy timed out\n"

    [(_, [event])] = await consume_events(kafka_bootstrap, router_settings.events_topic, 1)
    assert (event["status"], event["error_message"]) == ("error", "upstream legacy timed out")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_limit_gets_413_and_is_not_forwarded(
        start_router: StartRouter, legacy: Upstream, chunked: bool) -> None:
    router = await start_router(rollout_config(0), max_body_bytes=1000)

    async def body() -> Any:
        yield b"x" * 1001

    response = await router.post("/webhook/jobs", data=body() if chunked else b"x" * 1001)
    assert response.status == 413
    assert "1000-byte limit" in await response.text()
    assert legacy.seen == []


async def test_a_body_at_the_limit_is_forwarded(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), max_body_bytes=1000)
    response = await router.post("/webhook/jobs", data=b"{}" + b" " * 998)
    assert response.status == 200
    assert len(legacy.seen[0].body) == 1000


async def test_a_body_that_is_not_json_is_forwarded_to_legacy(
        start_router: StartRouter, legacy: Upstream, unified: Upstream) -> None:
    router = await start_router(rollout_config(100))
    response = await router.post("/webhook/jobs", data=b"payload=<xml/>",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status, response.headers["X-Routed-To"]) == (200, "legacy")
    assert legacy.seen[0].body == b"payload=<xml/>"
    assert unified.seen == []


async def test_a_webhook_without_a_sticky_key_is_routed_at_random(
        start_router: StartRouter, legacy: Upstream, unified: Upstream) -> None:
    router = await start_router(rollout_config(50))
    statuses = [(await router.post("/webhook/marketplace", data=b'{"event": "ping"}')).status
                for _ in range(40)]
    assert statuses == [200] * 40
    # 40 random keys at 50%: all on one side has a chance of 2 in 10^12.
    assert legacy.seen and unified.seen


async def test_an_unknown_domain_goes_to_legacy_and_is_counted_apart(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(100))
    response = await router.post("/webhook/newsletter", data=WEBHOOK)
    assert (response.status, response.headers["X-Routed-To"]) == (200, "legacy")
    assert legacy.seen[0].path == "/webhook/newsletter"
    metrics = await (await router.get("/metrics")).text()
    assert ('trafficlight_router_requests_total{domain="_unknown",routed_to="legacy",'
            'status="success"} 1.0') in metrics
    assert "newsletter" not in metrics


@pytest.mark.parametrize("raw_path", [
    "/webhook/..%2Fadmin",
    "/webhook/jobs%2F..%2F..%2Fadmin",
    "/webhook/%2e%2e",
    "/webhook/jobs.backup",
    "/webhook/" + "a" * 65,
    "/webhook/j%00bs",
])
async def test_a_domain_that_is_not_a_plain_name_gets_400_and_is_not_forwarded(
        start_router: StartRouter, legacy: Upstream, raw_path: str) -> None:
    router = await start_router(rollout_config(0))
    response = await router.post(URL(raw_path, encoded=True), data=WEBHOOK)
    assert response.status == 400
    assert "invalid domain" in await response.text()
    assert legacy.seen == []


async def test_metrics_show_requests_latency_events_and_config(
        start_router: StartRouter) -> None:
    router = await start_router(rollout_config(25, version=9))
    await router.post("/webhook/profile", data=WEBHOOK)
    metrics = await (await router.get("/metrics")).text()
    assert ('trafficlight_router_requests_total{domain="profile",routed_to="legacy",'
            'status="success"} 1.0') in metrics
    assert ('trafficlight_router_upstream_seconds_count{domain="profile",routed_to="legacy"} 1.0'
            in metrics)
    assert "trafficlight_router_config_version 9.0" in metrics
    assert "trafficlight_router_routing_percentage 25.0" in metrics
    for name in ("events_buffered", "events_spooled", "events_dropped_total", "config_age_seconds"):
        assert f"trafficlight_router_{name} " in metrics


async def test_healthz_reports_the_config_in_force(start_router: StartRouter) -> None:
    router = await start_router(rollout_config(25, version=9))
    response = await router.get("/healthz")
    assert response.status == 200
    assert (await response.json())["config_version"] == 9


def test_event_ids_are_version_4_uuids_in_hex() -> None:
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(hex=i).version == 4 and uuid.UUID(hex=i).hex == i for i in ids)
