"""Dockerfile.worker, docker-compose.yml and monitoring/, checked as files.

Fast checks of what the files promise (timeouts against the policy table, no
committed secret, mounted files exist). The image and the stack are built and
run for real in tests/acceptance/.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from datetime import timedelta

import pytest
import yaml

from settings import load_settings
from tests.support import free_port, http_get, job_in, require, wait_for
from tests.support.environment import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of Dockerfile.worker, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile.worker").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines if line and not line.startswith("#")
    ]


def duration(text: str) -> timedelta:
    units = {"h": "hours", "m": "minutes", "s": "seconds"}
    return sum((timedelta(**{units[u]: int(n)}) for n, u in re.findall(r"(\d+)([hms])", text)),
               timedelta())


def policies_by_queue():
    return {p.queue: p for p in load_settings().policies.by_actor().values()}


# docker-compose.yml

def test_compose_has_the_services_the_system_needs():
    assert set(SERVICES) >= {"postgres", "migrate", "worker", "worker-fix", "prometheus",
                             "grafana", "mailpit"}
    assert "pgdata" in COMPOSE["volumes"]
    assert any(v.startswith("pgdata:") for v in SERVICES["postgres"]["volumes"])
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["worker", "worker-fix"])
def test_each_worker_waits_for_its_longest_job_before_being_killed(name):
    service = SERVICES[name]
    env = service["environment"]
    queues = env["DRAMATIQ_QUEUES"].split()
    longest = max(policies_by_queue()[queue].time_limit for queue in queues)
    shutdown = timedelta(milliseconds=int(env["DRAMATIQ_SHUTDOWN_TIMEOUT_MS"]))

    assert shutdown >= longest
    assert duration(service["stop_grace_period"]) > shutdown
    assert service["restart"] == "unless-stopped"
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_execute_fix_runs_one_at_a_time_per_worker_and_the_light_queues_elsewhere():
    fix = SERVICES["worker-fix"]["environment"]
    light = SERVICES["worker"]["environment"]
    all_queues = set(policies_by_queue())
    # Where the Docker engine is: the fixes, and the cleanup of their containers.
    engine_queues = {"execute-fix", "cleanup-container"}

    assert set(fix["DRAMATIQ_QUEUES"].split()) == engine_queues
    assert fix["JOBS_SANDBOX__RUNTIME"] == "docker"
    # One process, and execute_fix's concurrency of 1 a process: one fix at a
    # time, while cleanups take the other threads.
    assert fix["DRAMATIQ_PROCESSES"] == "1" and int(fix["DRAMATIQ_THREADS"]) > 1
    assert load_settings().policies.execute_fix.concurrency == 1
    assert set(light["DRAMATIQ_QUEUES"].split()) == all_queues - engine_queues
    assert int(light["DRAMATIQ_THREADS"]) > 1


def test_every_file_compose_mounts_exists():
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert (ROOT / SERVICES["worker"]["build"]["dockerfile"]).exists()


def test_no_secret_is_committed():
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", name):
                assert str(value).startswith("${"), f"{name} is set in docker-compose.yml"
            if name == "DATABASE_URL":
                assert "${POSTGRES_PASSWORD" in value
    assert re.search(r"^POSTGRES_PASSWORD=$", (ROOT / ".env.example").read_text(), re.M)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# Dockerfile.worker

def test_the_image_is_slim_runs_as_a_user_and_stops_gracefully():
    instructions = dockerfile()
    froms = [args for op, args in instructions if op == "FROM"]
    assert all("slim" in image for image in froms)
    assert [args for op, args in instructions if op == "USER"] == ["worker"]
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    assert any(op == "HEALTHCHECK" for op, _ in instructions)
    (cmd,) = [json.loads(args) for op, args in instructions if op == "CMD"]
    assert "exec dramatiq actors" in cmd[-1]
    for op, args in instructions:
        if op == "COPY" and "--from" not in args:
            for source in shlex.split(args)[:-1]:
                assert (ROOT / source).exists(), source


# monitoring/

def metric_names_in(expression: str) -> set[str]:
    names = set(re.findall(r"\b(dramatiq_[a-z_]+)\b", expression))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if "duration" in n else n for n in names}


def monitored_metric_names() -> set[str]:
    names: set[str] = set()
    rules = yaml.safe_load((ROOT / "monitoring/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            names |= metric_names_in(rule["expr"])
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/jobs.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= metric_names_in(target["expr"])
    return names


def test_every_metric_the_dashboard_and_alerts_use_is_exported_by_a_real_worker(cli_worker,
                                                                                tmp_path):
    from tests.support.workload import probe_fails

    port = free_port()
    worker = cli_worker("tests.support.workload", threads=2, env={
        "JOBS_METRICS_PORT": str(port), "JOBS_METRICS_DIR": str(tmp_path / "m")})
    worker.wait_ready()
    message = probe_fails.send_with_options(kwargs={"key": "monitored"}, max_retries=1)
    job_in(message.message_id, "dead", timeout=15)

    def exported() -> set[str]:
        try:
            text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        except OSError:
            return set()
        return set(re.findall(r"^(dramatiq_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]", text, re.M))

    wanted = monitored_metric_names()
    assert len(wanted) >= 8
    wait_for(lambda: exported() >= wanted, timeout=15, what=f"metrics {sorted(wanted)}")


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard():
    datasource = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/dashboards.yml").read_text())
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/jobs.json").read_text())

    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {source["uid"]}


def test_alert_rules_pass_promtool():
    require(shutil.which("promtool") is not None, "promtool is not installed (apt: prometheus)")
    result = subprocess.run(["promtool", "check", "rules", ROOT / "monitoring/alerts.yml"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_config_loads_the_alert_rules():
    config = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in SERVICES["prometheus"]["volumes"])
    assert mounts["./monitoring/alerts.yml"] in config["rule_files"]


def test_compose_runs_the_periodic_scheduler_from_the_worker_image():
    scheduler = SERVICES["scheduler"]
    assert scheduler["command"] == ["pts-jobs", "scheduler"]
    assert scheduler["image"] == SERVICES["worker"]["image"]
    assert scheduler["restart"] == "unless-stopped"
