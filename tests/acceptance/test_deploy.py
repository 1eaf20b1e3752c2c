"""Dockerfile.worker, docker-compose.yml and monitoring/, checked without Docker.

No Docker engine runs here, so the compose file and configs are parsed and
checked, and the image's install and start commands are replayed in a clean
virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import venv
from datetime import timedelta

import pytest
import yaml

from settings import load_settings
from tests.support import free_port, http_get, job_in, wait_for
from tests.support.environment import ROOT, TEST_ENV

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

    assert fix["DRAMATIQ_QUEUES"].split() == ["execute-fix"]
    assert fix["DRAMATIQ_THREADS"] == "1"
    assert set(light["DRAMATIQ_QUEUES"].split()) == all_queues - {"execute-fix"}
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


def test_the_images_install_and_start_commands_work_in_a_clean_virtualenv(tmp_path, broker):
    """Replays Dockerfile.worker: build wheels with constraints, install offline, start."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    wheels = tmp_path / "wheels"
    subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", wheels,
                    "--constraint", ROOT / "constraints.txt", ROOT],
                   check=True, cwd=tmp_path, timeout=600)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index",
                    "--find-links", wheels, "pts-jobs"], check=True, cwd=tmp_path, timeout=600)
    assert not list(wheels.glob("pgserver-*")), "the embedded database stays out of the image"

    image_env = {
        "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}", "HOME": str(tmp_path),
        **{k: v for k, v in TEST_ENV.items()},
        "DRAMATIQ_PROCESSES": "1", "DRAMATIQ_THREADS": "2", "DRAMATIQ_QUEUES": "",
        "DRAMATIQ_SHUTDOWN_TIMEOUT_MS": "10000", "JOBS_METRICS_PORT": str(free_port()),
    }
    healthy = subprocess.run(["pts-jobs", "health"], cwd=tmp_path, env=image_env,
                             capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stderr

    (cmd,) = [json.loads(args) for op, args in dockerfile() if op == "CMD"]
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(cmd, cwd=tmp_path, env=image_env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "is ready for action" in (tmp_path / "worker.log").read_text(),
                 timeout=30, what="the image's worker to boot")
        import actors
        from actors.process_bug_report import receive

        bug = receive(raw_text="Login button does nothing")
        message = actors.process_bug_report.send(bug_report_id=bug)
        job_in(message.message_id, "done", timeout=20)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        log.close()
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


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


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_alert_rules_pass_promtool():
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
