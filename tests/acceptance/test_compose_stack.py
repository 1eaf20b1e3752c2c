"""docker-compose.yml, brought up for real from the committed checkout.

Services are read from the compose file itself (merged with its overrides), so a
service added there is started, health-checked and stopped here with no change
to this file. On a machine without a registry, docker-compose.registry-less.yml
swaps the public images for the stand-ins .ci/docker-engine builds, and Grafana
(no Debian package) is left out: its provisioning is checked against the
stack's real Prometheus instead.

The stack runs under its own project name, with its published ports moved to
free ones, so it can run beside anything else on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.sandbox import SandboxConfig
from pipeline.sandbox.container import LABEL_JOB, docker_client
from tests.acceptance.docker_support import (
    MEASURED,
    Stopwatch,
    docker,
    health,
    inspect,
)
from tests.support import free_port, http_get, wait_for
from tests.support.environment import RUN
from tests.support.pipeline import make_repo
from tests.support.sandbox import IMAGE_FIXERS, build_test_image

OVERRIDE = "docker-compose.registry-less.yml"


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin exists, else Debian's docker-compose."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose is installed "
                "(`bash .ci/docker-engine` installs it)", pytrace=False)


def image_available(image: str) -> bool:
    if docker("image", "inspect", image, check=False, timeout=30).strip() not in ("", "[]"):
        return True
    return subprocess.run(["docker", "pull", "-q", image], capture_output=True,
                          timeout=300).returncode == 0


def duration_s(text: str | None) -> float:
    """Compose's duration ("62m", "10s", "1m30s") in seconds; Docker's default 10 s."""
    if not text:
        return 10.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    total, number = 0.0, ""
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text[index:index + 2] == "ms" else char
        total += float(number) * units[unit]
        number, index = "", index + len(unit)
    return total


@dataclass
class Stack:
    command: list[str]
    directory: Path
    env: dict[str, str]
    config: dict

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        result = subprocess.run([*self.command, *args], cwd=self.directory, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    @property
    def services(self) -> dict[str, dict]:
        """What `up` starts: every service not parked in a profile."""
        return {name: spec for name, spec in self.config["services"].items()
                if not spec.get("profiles")}

    def long_running(self) -> list[str]:
        return [name for name, spec in self.services.items()
                if spec.get("restart", "no") not in ("no", "on-failure")]

    def one_shot(self) -> list[str]:
        return [name for name in self.services if name not in self.long_running()]

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-a", "-q", service).split()

    def port(self, variable: str) -> int:
        return int(self.env[variable])

    def prometheus(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"http://127.0.0.1:{self.port('PROMETHEUS_PORT')}{path}{query}")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]


@dataclass(frozen=True)
class FixSetup:
    """What a user adds to run fixes (a fixer image and its command), plus a
    repository the workers may clone from disk: the stack has no git host."""

    fixer_image: str
    repository: Path

    CONTAINER_REPOSITORY = "/srv/sample-repo"

    def environment(self) -> dict[str, str]:
        return {"JOBS_FIXER_COMMAND": f"python3 {IMAGE_FIXERS}/fix_ok.py",
                "JOBS_SANDBOX__IMAGE": self.fixer_image, "JOBS_GIT_PROTOCOLS": "file"}

    def volume(self) -> str:
        return f"{self.repository}:{self.CONTAINER_REPOSITORY}:ro"


def override_for_tests(config: dict, worker_image: str, path: Path, fix: FixSetup) -> Path:
    """A test-only override: the worker services build under the acceptance tag
    (not over a user's pts-jobs-worker), each health check, the stack's own, is
    polled every second instead of its production interval (30-60 s), and the
    workers get ``fix``'s repository and settings."""
    services: dict[str, dict] = {}
    for name, spec in config["services"].items():
        if spec.get("profiles"):
            continue
        override: dict = services.setdefault(name, {})
        if "build" in spec:
            override["image"] = worker_image
            override["environment"] = fix.environment()
            override["volumes"] = [fix.volume()]
        check = spec.get("healthcheck") or {}
        if not check.get("disable") and check.get("test") != ["NONE"]:
            override["healthcheck"] = {"interval": "1s", "start_period": "1s"}
    document: dict = {"services": services}
    if "version" in config:
        document = {"version": config["version"], **document}
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def fix_setup(tmp_path_factory) -> FixSetup:
    sandbox_config = SandboxConfig(workspace_dir=Path("/nonexistent"))
    repository = make_repo(tmp_path_factory.mktemp("compose-repo") / "repo")
    # The workers run as uid 10001; git refuses a repository another user owns.
    subprocess.run(["chown", "-R", "10001:10001", str(repository)], check=True)
    return FixSetup(build_test_image(docker_client(sandbox_config)), repository)


@pytest.fixture(scope="module")
def stack(source_tree, worker_image, fix_setup, tmp_path_factory) -> Iterator[Stack]:
    command = compose_command()
    env = {**os.environ, "COMPOSE_PROJECT_NAME": f"pts-accept-{RUN}",
           "POSTGRES_PASSWORD": uuid.uuid4().hex, "GRAFANA_ADMIN_PASSWORD": uuid.uuid4().hex,
           "PROMETHEUS_PORT": str(free_port()), "MAILPIT_PORT": str(free_port()),
           "GRAFANA_PORT": str(free_port()), "WEB_PORT": str(free_port()),
           # The dashboard refuses to listen on 0.0.0.0 without a token.
           "JOBS_ADMIN_TOKEN": uuid.uuid4().hex}
    files = ["docker-compose.yml"]
    public = sorted({spec["image"] for spec in yaml.safe_load(
        (source_tree / "docker-compose.yml").read_text())["services"].values()
        if "build" not in spec})
    if not all(image_available(image) for image in public):
        files.append(OVERRIDE)  # no registry: the stand-ins
    env["COMPOSE_FILE"] = os.pathsep.join(files)
    stack = Stack(command, source_tree, env, {})
    stack.config = yaml.safe_load(stack.compose("config"))
    extra = override_for_tests(stack.config, worker_image,
                               tmp_path_factory.mktemp("compose") / "test-override.yml",
                               fix_setup)
    env["COMPOSE_FILE"] = os.pathsep.join([*files, str(extra)])
    MEASURED["compose files"] = ", ".join(files)
    try:
        with Stopwatch() as build:
            stack.compose("build", timeout=1200)
        MEASURED["compose build"] = f"{build.seconds:.1f} s"
        with Stopwatch() as up:
            stack.compose("up", "--detach", timeout=600)
            wait_for(lambda: all(health(c) == "healthy" for s in stack.long_running()
                                 for c in stack.containers(s)) or any(
                                     health(c) in ("unhealthy", "exited")
                                     for s in stack.long_running() for c in stack.containers(s)),
                     timeout=240, interval=0.5, what="every service to be healthy")
        MEASURED["compose up -> every service healthy"] = f"{up.seconds:.1f} s"
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "30",
                      timeout=300, check=False)


def test_every_service_comes_up_healthy(stack):
    states = {f"{service}/{container[:12]}": health(container)
              for service in stack.long_running() for container in stack.containers(service)}
    assert set(stack.long_running()) >= {"postgres", "worker", "worker-fix", "prometheus",
                                         "mailpit", "scheduler"}
    assert states and all(state == "healthy" for state in states.values()), (
        states, {s: stack.compose("logs", "--tail", "30", s) for s in stack.long_running()})


def test_migrate_runs_once_and_exits_0(stack):
    assert "migrate" in stack.one_shot()
    for service in stack.one_shot():
        (container,) = stack.containers(service)
        state = inspect(container)["State"]
        assert (service, state["Status"], state["ExitCode"]) == (service, "exited", 0)
    assert "applied" in stack.compose("logs", "migrate")


def test_a_bug_report_goes_through_the_pipeline_and_its_mail_reaches_the_catcher(stack):
    reporter = f"reporter-{uuid.uuid4().hex[:8]}@example.com"
    script = (
        "import actors\n"
        "from actors.process_bug_report import receive\n"
        "bug = receive(raw_text='The login button does nothing when clicked',"
        f" reporter_email={reporter!r})\n"
        "actors.process_bug_report.send(bug_report_id=bug)\n"
    )
    stack.compose("exec", "-T", "worker", "python", "-c", script, timeout=60)

    def caught() -> list[dict]:
        status, body = http_get(f"http://127.0.0.1:{stack.port('MAILPIT_PORT')}/api/v1/messages")
        assert status == 200, body
        return [message for message in json.loads(body)["messages"]
                if any(to["Address"] == reporter for to in message["To"])]

    (mail,) = wait_for(caught, timeout=60, interval=0.5, what=f"the mail to {reporter}")
    assert mail["Subject"]


def in_worker(stack: Stack, script: str, timeout: float = 60) -> str:
    """What ``script`` prints, run by Python in the stack's light worker."""
    return stack.compose("exec", "-T", "worker", "python", "-c", script,
                         timeout=timeout).strip()


def test_a_fix_runs_in_a_container_of_the_hosts_engine_and_is_cleaned_up(stack, fix_setup):
    since = str(int(time.time()) - 1)
    fix_job_id = in_worker(stack, (
        "from actors import analyze_codebase, process_bug_report\n"
        "from actors.execute_fix import queue_fix\n"
        "from actors.process_bug_report import receive\n"
        "from actors.runtime import current\n"
        "from pipeline.codebase import link_repository\n"
        "run = current()\n"
        f"link = link_repository(run.db, run.pipeline, 'file://{fix_setup.CONTAINER_REPOSITORY}',"
        " 'main')\n"
        "bug = receive(raw_text='add() subtracts\\nAssertionError: 0 != 4',"
        " reporter_email='ada@example.com', repo_link_id=link)\n"
        "process_bug_report.send(bug_report_id=bug)\n"
        "analyze_codebase.send(repo_link_id=link, triggered_by='link')\n"
        # A fix needs the report parsed and the repository analysed.
        "import time\n"
        "from pipeline.errors import MissingRecord\n"
        "deadline = time.monotonic() + 120\n"
        "while True:\n"
        "    try:\n"
        "        print(queue_fix(bug))\n"
        "        break\n"
        "    except MissingRecord:\n"
        "        if time.monotonic() > deadline:\n"
        "            raise\n"
        "        time.sleep(0.5)\n"
    ), timeout=180).splitlines()[-1]

    def fix_job() -> dict:
        return json.loads(in_worker(stack, (
            "import json\n"
            "from actors.runtime import current\n"
            f"row = current().db.one('fix_job_get', id={fix_job_id!r})\n"
            "print(json.dumps({k: row[k] for k in ('status', 'patch', 'attempts')}))\n")))

    wait_for(lambda: fix_job()["status"] in ("succeeded", "failed"), timeout=180, interval=1,
             what="the fix to finish")
    stored = fix_job()
    assert (stored["status"], stored["attempts"]) == ("succeeded", 1), stored
    assert "+    return a + b" in stored["patch"]

    # The fixer ran in a container of the host's engine, started by worker-fix
    # through the socket, and the cleanup job removed it and its sandbox.
    created = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "event=create", "--filter", f"label={LABEL_JOB}={fix_job_id}",
                     "--format", "{{.Actor.Attributes.image}}").split()
    assert created == [fix_setup.fixer_image]
    wait_for(lambda: not docker("ps", "-a", "-q", "--filter", f"label={LABEL_JOB}={fix_job_id}"),
             timeout=60, interval=1, what="the fixer's container to be removed")
    (fix_worker,) = stack.containers("worker-fix")
    sandboxes = "/var/lib/pts-jobs/workspace/sandboxes"
    wait_for(lambda: docker("exec", fix_worker, "ls", "-A", sandboxes).split() == [],
             timeout=60, interval=1, what="the sandbox to be removed")
    # worker-fix started as root and dropped it: the socket's group is all it kept.
    status = dict(line.split(":", 1) for line in
                  docker("exec", fix_worker, "cat", "/proc/1/status").splitlines())
    socket_gid = docker("exec", fix_worker, "stat", "-c", "%g", "/var/run/docker.sock").strip()
    assert status["Uid"].split() == ["10001"] * 4, status["Uid"]
    assert status["Groups"].split() == [socket_gid]
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0
    assert int(status["NoNewPrivs"]) == 1


def scraped_workers(stack: Stack) -> dict[str, str]:
    """instance -> health of Prometheus's worker targets."""
    targets = stack.prometheus("/api/v1/targets")["activeTargets"]
    return {t["labels"]["instance"]: t["health"] for t in targets
            if t["labels"]["job"] == "pts-jobs-workers"}


def worker_addresses(stack: Stack) -> set[str]:
    """host:9191 of every container running Dockerfile.worker's own command."""
    addresses = set()
    for service, spec in stack.services.items():
        build = spec.get("build") or {}
        if not str(build.get("dockerfile", "")).endswith("Dockerfile.worker") \
                or "command" in spec:
            continue  # not a dramatiq worker (migrate, the scheduler run other commands)
        for container in stack.containers(service):
            networks = inspect(container)["NetworkSettings"]["Networks"]
            addresses |= {f"{n['IPAddress']}:9191" for n in networks.values()}
    return addresses


def test_prometheus_scrapes_every_worker_and_evaluates_the_alert_rules(stack):
    wanted = worker_addresses(stack)
    assert len(wanted) >= 2
    wait_for(lambda: {a: h for a, h in scraped_workers(stack).items() if a in wanted}
             == dict.fromkeys(wanted, "up"), timeout=90, interval=1,
             what=f"Prometheus to scrape {sorted(wanted)}")

    rules_in_file = [rule["alert"] for group in yaml.safe_load(
        (stack.directory / "monitoring/alerts.yml").read_text())["groups"]
        for rule in group["rules"]]

    def evaluated() -> list[dict]:
        rules = [rule for group in stack.prometheus("/api/v1/rules")["groups"]
                 for rule in group["rules"]]
        done = [r for r in rules if not r.get("lastEvaluation", "").startswith("0001")]
        return rules if len(done) == len(rules) == len(rules_in_file) else []

    rules = wait_for(evaluated, timeout=90, interval=1, what="every alert rule to be evaluated")
    assert sorted(rule["name"] for rule in rules) == sorted(rules_in_file)
    assert all(rule["health"] == "ok" for rule in rules), rules


def test_every_grafana_panel_query_evaluates_against_the_stacks_prometheus(stack):
    provisioning = stack.directory / "monitoring/grafana"
    (source,) = yaml.safe_load(
        (provisioning / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    url = urllib.parse.urlsplit(source["url"])
    assert url.hostname in stack.config["services"] and url.port == 9090
    dashboard = json.loads((provisioning / "dashboards/jobs.json").read_text())

    wait_for(lambda: stack.prometheus("/api/v1/query", query="dramatiq_messages_inprogress")
             ["result"], timeout=60, interval=1, what="a first scrape of the workers")
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}
    expressions = [(panel["title"], target["expr"]) for panel in dashboard["panels"]
                   for target in panel["targets"]]
    assert expressions
    for title, expression in expressions:
        answer = stack.prometheus("/api/v1/query", query=expression)
        assert answer["resultType"] == "vector", (title, expression, answer)


def test_scaling_worker_to_2_runs_and_scrapes_both(stack):
    stack.compose("up", "--detach", "--scale", "worker=2", timeout=300)
    wait_for(lambda: len(stack.containers("worker")) == 2
             and all(health(c) == "healthy" for c in stack.containers("worker")),
             timeout=120, interval=0.5, what="two healthy workers")
    wanted = worker_addresses(stack)
    assert len(wanted) == 3
    wait_for(lambda: {a: h for a, h in scraped_workers(stack).items() if a in wanted}
             == dict.fromkeys(wanted, "up"), timeout=90, interval=1,
             what="Prometheus to scrape the new worker")
    (migrate,) = stack.containers("migrate")
    assert inspect(migrate)["State"]["ExitCode"] == 0


def test_compose_down_drains_every_service_within_its_grace_period(stack):
    running = {container: service for service in stack.long_running()
               for container in stack.containers(service)}
    since = str(int(time.time()) - 1)
    with Stopwatch() as down:
        stack.compose("down", "--volumes", timeout=600)
    MEASURED["compose down"] = f"{down.seconds:.1f} s"
    events = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                    "--filter", "event=die", "--filter",
                    f"label=com.docker.compose.project={stack.env['COMPOSE_PROJECT_NAME']}",
                    "--format", "{{.ID}} {{.Actor.Attributes.exitCode}}")
    exits = dict(line.split() for line in events.splitlines())
    # Killed at the end of its grace period, a container exits 137 (SIGKILL).
    assert {running[c]: exits.get(c) for c in running} == {running[c]: "0" for c in running}
    longest_grace = max(duration_s(stack.services[s].get("stop_grace_period"))
                        for s in running.values())
    assert down.seconds < longest_grace
