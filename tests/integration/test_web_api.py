"""The producer API over real HTTP against real PostgreSQL: enqueue validated
payloads, look jobs up, the OpenAPI document, and who may call."""

from __future__ import annotations

import uuid

import httpx
import pytest

from pgbroker import jobs
from tests.support import job_in
from tests.support.fixtures import query

NOTIFICATION = {"type": "bug_received", "bugReportId": str(uuid.uuid4()),
                "recipientEmail": "reporter@example.com"}


@pytest.fixture
def api(web_url, web_config):
    with httpx.Client(base_url=web_url, timeout=10,
                      headers={"Authorization": f"Bearer {web_config.api_token}"}) as client:
        yield client


def queued_jobs() -> int:
    return query('SELECT count(*) FROM {schema}."queue"')[0][0]


def test_a_valid_payload_is_enqueued_once_and_answered_201_with_its_id(broker, api):
    answer = api.post("/api/jobs/send_notification", json=NOTIFICATION)

    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    job = jobs.get_job(data["id"], broker=broker)
    assert (job.actor_name, job.queue_name, job.state) == (
        "send_notification", "send-notification", "queued")
    assert job.payload["recipient_email"] == "reporter@example.com"
    assert answer.headers["location"] == f"/api/jobs/{data['id']}"
    assert queued_jobs() == 1


def test_an_invalid_payload_is_refused_with_422_naming_each_field_and_nothing_is_enqueued(api):
    answer = api.post("/api/jobs/send_notification", json={
        "type": "carrier_pigeon", "recipientEmail": "not-an-address", "colour": "red"})

    assert answer.status_code == 422
    fields = {f["field"] for f in answer.json()["fields"]}
    assert fields == {"type", "bug_report_id", "recipient_email", "colour"}
    assert queued_jobs() == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_refused_with_422(api, body):
    answer = api.post("/api/jobs/send_notification", content=body,
                      headers={"Content-Type": "application/json"})

    assert answer.status_code == 422
    assert queued_jobs() == 0


def test_without_a_valid_token_the_api_answers_401_and_a_viewer_may_not_enqueue(
        web_url, web_config, api):
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": web_config.api_token}):  # no "Bearer "
        for method, path in (("POST", "/api/jobs/send_notification"),
                             ("GET", f"/api/jobs/{uuid.uuid4()}"), ("GET", "/api/openapi.json")):
            answer = httpx.request(method, web_url + path, json=NOTIFICATION, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
    viewer = {"Authorization": f"Bearer {web_config.viewer_token}"}
    answer = httpx.post(web_url + "/api/jobs/send_notification", json=NOTIFICATION,
                        headers=viewer)
    assert answer.status_code == 403
    assert queued_jobs() == 0


def test_an_idempotency_key_makes_repeated_posts_one_job(api):
    first = api.post("/api/jobs/send_notification", json=NOTIFICATION,
                     headers={"Idempotency-Key": "bug-1-received"})
    again = api.post("/api/jobs/send_notification", json=NOTIFICATION,
                     headers={"Idempotency-Key": "bug-1-received"})
    other = api.post("/api/jobs/send_notification", json=NOTIFICATION,
                     headers={"Idempotency-Key": "bug-2-received"})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again.json()["data"]["deduplicated"] is True
    assert other.json()["data"]["id"] != first.json()["data"]["id"]
    assert queued_jobs() == 2


def test_delay_and_priority_are_kept_on_the_job(broker, api):
    answer = api.post("/api/jobs/send_notification?delay=120&priority=-50", json=NOTIFICATION)

    assert answer.status_code == 201
    job = jobs.get_job(answer.json()["data"]["id"], broker=broker)
    assert (job.state, job.priority) == ("delayed", -50)
    assert 100 < (job.available_at - job.enqueued_at).total_seconds() <= 121


@pytest.mark.parametrize("params", ["delay=-1", "delay=nan", "delay=99999999", "priority=x",
                                    "priority=1000", "colour=red"])
def test_bad_options_are_refused_with_422(api, params):
    answer = api.post(f"/api/jobs/send_notification?{params}", json=NOTIFICATION)

    assert answer.status_code == 422, answer.text
    assert queued_jobs() == 0


def test_an_unknown_job_type_is_404_and_lists_the_known_ones(api):
    answer = api.post("/api/jobs/rm_rf", json={})

    assert answer.status_code == 404
    assert "send_notification" in answer.json()["jobTypes"]
    assert "prune_jobs" not in answer.json()["jobTypes"]


def test_a_job_is_looked_up_with_its_state_attempts_error_and_result(api, worker):
    done = api.post("/api/jobs/probe_record", json={"key": "api"}).json()["data"]["id"]
    dead = api.post("/api/jobs/probe_permanent", json={"key": "api"}).json()["data"]["id"]
    job_in(done, "done")
    job_in(dead, "dead")

    shown = api.get(f"/api/jobs/{done}").json()["data"]
    failed = api.get(f"/api/jobs/{dead}").json()["data"]

    assert (shown["state"], shown["attempts"], shown["result"]) == ("done", 1, "API")
    assert failed["state"] == "dead"
    assert failed["lastError"] == "PermanentError: this input can never work"
    assert api.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/jobs/not-a-uuid").status_code == 404


def test_the_openapi_document_has_each_job_types_payload_schema(api):
    document = api.get("/api/openapi.json").json()

    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/api/jobs/send_notification"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"type", "bugReportId", "recipientEmail"}
    assert schema["additionalProperties"] is False
    assert {"/api/jobs/execute_fix", "/api/jobs/{id}"} <= set(document["paths"])
