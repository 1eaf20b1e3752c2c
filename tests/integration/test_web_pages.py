"""The dashboard over real HTTP: sessions, CSRF, roles, masking, headers."""

from __future__ import annotations

import httpx

from pgbroker import jobs
from tests.support import job_in
from tests.support.web import csrf_of
from tests.support.workload import probe_permanent


def test_nothing_but_the_login_page_is_served_without_a_session(web_client):
    anonymous = web_client()
    for path in ("/", "/jobs", "/dead", "/workers", "/schedules", "/jobs/x"):
        answer = anonymous.get(path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path
    assert anonymous.post("/actions/pause", data={"queue": "q"}).status_code == 401
    assert anonymous.get("/login").status_code == 200


def test_a_wrong_token_opens_no_session(web_client):
    client = web_client()
    answer = client.post("/login", data={"csrf_token": csrf_of(client.get("/login").text),
                                         "token": "guess"})

    assert answer.status_code == 401
    assert client.get("/").status_code == 303


def test_the_session_cookie_is_signed_httponly_and_samesite_strict(web_client, web_config):
    client = web_client()
    answer = client.post("/login", data={"csrf_token": csrf_of(client.get("/login").text),
                                         "token": web_config.admin_token})

    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert web_config.admin_token.lower() not in cookie
    forged = web_client(cookies={"pts_jobs_session": client.cookies["pts_jobs_session"][:-4]
                                   + "AAAA"})
    assert forged.get("/").status_code == 303


def test_every_response_carries_the_security_headers(web_client, web_url, web_config):
    admin = web_client(web_config.admin_token)
    for answer in (admin.get("/"), httpx.get(web_url + "/login")):
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in admin.get("/").text  # no inline script at all


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
        web_client, broker, web_config):
    admin = web_client(web_config.admin_token)
    for data in ({"queue": "probe-record", "confirmed": "yes"},
                 {"queue": "probe-record", "confirmed": "yes", "csrf_token": "forged"}):
        assert admin.post("/actions/pause", data=data).status_code == 403
    assert jobs.paused_queues(broker=broker) == []


def test_an_admin_action_asks_for_confirmation_then_acts(web_client, broker, web_config):
    admin = web_client(web_config.admin_token)
    token = csrf_of(admin.get("/").text)
    asked = admin.post("/actions/pause", data={"queue": "probe-record", "csrf_token": token})
    assert asked.status_code == 200 and "Pause queue?" in asked.text
    assert jobs.paused_queues(broker=broker) == []

    done = admin.post("/actions/pause", data={"queue": "probe-record", "csrf_token": token,
                                              "confirmed": "yes", "next": "//evil.example"})

    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert [p.queue_name for p in jobs.paused_queues(broker=broker)] == ["probe-record"]
    jobs.resume_queue("probe-record", broker=broker)


def test_a_viewer_may_look_but_not_act_and_sees_no_email_address(
        web_client, broker, web_config, worker):
    dead = probe_permanent.send(key="someone@example.com").message_id
    job_in(dead, "dead")
    viewer = web_client(web_config.viewer_token)
    admin = web_client(web_config.admin_token)

    page = viewer.get(f"/jobs/{dead}").text
    assert "someone@example.com" not in page and "s***@example.com" in page
    assert 'action="/actions/' not in page
    assert "someone@example.com" in admin.get(f"/jobs/{dead}").text
    refused = viewer.post("/actions/retry", data={"job": dead, "confirmed": "yes",
                                                  "csrf_token": csrf_of(page)})
    assert refused.status_code == 403
    assert jobs.get_job(dead, broker=broker).state == "dead"


def test_the_job_list_filters_and_pages_by_keyset(web_client, broker, web_config, worker):
    from tests.support.workload import probe_record

    ids = [m.message_id for m in probe_record.send_many([{"key": f"k{i}"} for i in range(120)])]
    for message_id in ids:
        job_in(message_id, "done")
    admin = web_client(web_config.admin_token)

    seen: list[str] = []
    url: str | None = "/jobs?queue=probe-record&state=done"
    while url:
        page = admin.get(url).text
        seen += [i for i in ids if f"/jobs/{i}" in page]
        marker = page.find('rel="next"')
        url = None
        if marker != -1:
            url = page[page.rfind('href="', 0, marker) + 6:page.find('"', page.rfind(
                'href="', 0, marker) + 6)].replace("&amp;", "&")
    assert sorted(seen) == sorted(ids) and len(seen) == 120
    assert "/jobs/" not in admin.get("/jobs?state=dead&queue=probe-record").text.split(
        "<tbody>")[1].split("</tbody>")[0]


def test_the_workers_page_shows_who_holds_running_jobs(web_client, broker, web_config, worker):
    from tests.support import wait_for
    from tests.support.fixtures import query
    from tests.support.workload import probe_spin

    spinning = probe_spin.send(key="held", seconds=30).message_id
    wait_for(lambda: query("SELECT count(*) FROM {schema}.test_runs WHERE key = 'held'")[0][0],
             what="the job to start")
    admin = web_client(web_config.admin_token)

    page = admin.get("/workers").text

    assert broker.owner in page and f"/jobs/{spinning}" in page
    jobs.cancel(spinning, by="test", broker=broker)


def test_the_workers_page_reads_the_worker_registry_when_the_broker_keeps_one(
        web_client, broker, web_config):
    from tests.support.fixtures import query

    # Rows of the broker's registry (0008_workers), one live worker, one gone.
    query("""INSERT INTO {schema}.workers VALUES
             ('alive-host:41:aa', 'alive-host', 41, '{{execute-fix}}', now(), now(), 20, 1,
              now()),
             ('dead-host:42:bb', 'dead-host', 42, '{{}}', now() - interval '1 hour',
              now() - interval '10 minutes', 20, 2, now())""")
    page = web_client(web_config.admin_token).get("/workers").text

    alive, dead = page.index("alive-host:41:aa"), page.index("dead-host:42:bb")
    assert alive < dead
    assert "alive</span>" in page[alive:dead] and "gone</span>" in page[dead:]


def test_hostile_text_in_a_job_is_shown_as_text_never_as_markup(
        web_client, broker, web_config, worker):
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    dead = probe_permanent.send(key=hostile).message_id
    job_in(dead, "dead")
    admin = web_client(web_config.admin_token)

    for path in (f"/jobs/{dead}", "/jobs?state=dead", f"/jobs?error={hostile}"):
        page = admin.get(path, params=None).text
        assert "<script>alert" not in page and "<img src=x" not in page, path


def test_a_job_running_past_its_time_limit_or_with_a_lapsed_lease_is_flagged(
        web_client, broker, web_config):
    from tests.support.fixtures import query

    # Rows as a stuck worker leaves them; no worker runs here to rescue them.
    for lease, started in (("now() + interval '1 hour'", "now() - interval '1 hour'"),
                           ("now() - interval '1 minute'", "now() - interval '2 minutes'")):
        query(f"""INSERT INTO {{schema}}."queue" (message_id, queue_name, "state", message,
                  lease_owner, lease_expires_at, started_at, attempts)
                  VALUES (gen_random_uuid(), 'probe-busy', 'consumed',
                          '{{{{"actor_name": "probe_busy"}}}}', 'stuck:1:x', {lease},
                          {started}, 1)""")

    page = web_client(web_config.admin_token).get("/workers").text

    assert "over time limit</span>" in page and "lease lapsed</span>" in page
