"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is parsed as YAML and held to what production needs; `docker compose config`
also validates it where a compose binary exists.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from trafficlight.cli import cli
from trafficlight.router.settings import load_settings
from trafficlight.streams.thresholds import load_thresholds

ROOT = Path(__file__).resolve().parents[2]
TRAFFICLIGHT_SERVICES = {"migrate": "migrate", "router": "router", "worker-1": "worker",
                         "worker-2": "worker", "alerts": "alerts", "dashboard": "dashboard"}
SECRETS = {"POSTGRES_PASSWORD": "pw", "TRAFFICLIGHT_DASHBOARD_TOKEN": "token",
           "TRAFFICLIGHT_ALERTS_WEBHOOK": "https://hooks.example.invalid/services/x"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "postgres", *TRAFFICLIGHT_SERVICES}


def test_kafka_is_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "ZOOKEEPER" not in " ".join(env)
    assert kafka["volumes"] == ["kafka-data:/var/lib/kafka/data"]


def test_kafka_is_the_release_the_tests_run(compose: dict[str, Any]) -> None:
    pom = ET.parse(ROOT / "deploy" / "kafka" / "pom.xml").getroot()
    tested = pom.findtext("{http://maven.apache.org/POM/4.0.0}properties/"
                          "{http://maven.apache.org/POM/4.0.0}kafka.version")
    assert tested is not None and tested.startswith("4.")
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{tested}"


def test_postgres_is_postgresql_14_or_newer(compose: dict[str, Any]) -> None:
    image = compose["services"]["postgres"]["image"]
    name, _, version = image.partition(":")
    assert name == "postgres"
    assert int(version.split(".")[0]) >= 14


@pytest.mark.parametrize(("service", "command"), TRAFFICLIGHT_SERVICES.items())
def test_each_service_runs_a_real_subcommand_configured_by_environment(
        compose: dict[str, Any], service: str, command: str) -> None:
    spec = compose["services"][service]
    assert spec["image"] == "trafficlight:latest"
    assert spec["command"][0] == command
    assert command in cli.commands
    env = spec["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["DATABASE_URL"].startswith("postgresql://trafficlight:${POSTGRES_PASSWORD:?")
    assert env["DATABASE_URL"].endswith("@postgres:5432/trafficlight")


def test_services_start_after_migrations_and_healthy_dependencies(
        compose: dict[str, Any]) -> None:
    for service in set(TRAFFICLIGHT_SERVICES) - {"migrate"}:
        depends = compose["services"][service]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["kafka"] == {"condition": "service_healthy"}
    assert compose["services"]["migrate"]["restart"] == "no"


def test_workers_have_distinct_ids(compose: dict[str, Any]) -> None:
    ids = {compose["services"][w]["environment"]["TRAFFICLIGHT_WORKER_ID"]
           for w in ("worker-1", "worker-2")}
    assert ids == {"worker-1", "worker-2"}


def test_only_router_and_dashboard_publish_ports(compose: dict[str, Any]) -> None:
    published = {name: spec["ports"] for name, spec in compose["services"].items()
                 if "ports" in spec}
    assert published == {"router": ["8080:8080"], "dashboard": ["8090:8090"]}


def test_secrets_have_no_defaults(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS:
        assert f"${{{secret}:?" in text
        assert f"${{{secret}:-" not in text


def test_mounted_config_files_load(compose: dict[str, Any]) -> None:
    router = load_settings(ROOT / "deploy" / "router.toml")
    assert (router.host, router.port) == ("0.0.0.0", 8080)
    assert load_thresholds(ROOT / "deploy" / "thresholds.toml").default.critical_error_pct == 0.5
    for spec in compose["services"].values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), volume


def test_dockerfile_installs_every_package_and_runs_as_a_user() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == \
        "FROM python:3.11-slim"
    copied = {line.split()[1] for line in lines if line.startswith("COPY")}
    assert {"trafficlight", "router", "streams", "migrations"} <= copied
    assert "USER trafficlight" in lines
    assert 'ENTRYPOINT ["trafficlight"]' in lines


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker compose config -q` (or Debian's docker-compose v1) over the file."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        binary = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        binary = ["docker-compose"]
    else:
        pytest.skip("no compose binary (.ci/run installs Debian's docker-compose); "
                    "the YAML checks above still ran")
    return subprocess.run([*binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env})


def test_docker_compose_config_accepts_the_file() -> None:
    result = _compose_config(SECRETS)
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_refuses_to_run_without_the_secrets() -> None:
    result = _compose_config({})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
