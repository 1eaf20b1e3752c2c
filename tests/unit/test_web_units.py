"""The dashboard's pure parts, without a database: binding rules, tokens and
sessions, masking, send options, the OpenAPI document and the pictures."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from uuid import UUID

import pytest
from pydantic import EmailStr

from actors.base import Payload
from web import auth, charts
from web.api import openapi_document, send_options
from web.config import UnsafeBind, WebConfig, is_loopback
from web.pages import _safe_next, parse_filter


def config(**overrides) -> WebConfig:
    values = dict(host="127.0.0.1", port=8090, admin_token="a" * 20, viewer_token="v" * 20,
                  api_token="p" * 20, session_secret="s" * 32, session_max_age=3600,
                  secure_cookies=False, pipeline_schema="pipeline")
    return WebConfig(**{**values, **overrides})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com"])
def test_the_dashboard_refuses_a_non_loopback_address_without_a_token(host):
    with pytest.raises(UnsafeBind, match="JOBS_ADMIN_TOKEN"):
        config(host=host, admin_token=None, viewer_token=None).check_bind()
    config(host=host).check_bind()  # with a token it may


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    config(host=host, admin_token=None, viewer_token=None).check_bind()


def test_the_config_never_shows_its_tokens():
    assert "a" * 20 not in repr(config()) and "s" * 32 not in repr(config())


def test_tokens_give_their_roles_and_nothing_else():
    c = config()
    assert auth.role_of_token(c, "a" * 20) == "admin"
    assert auth.role_of_token(c, "v" * 20) == "viewer"
    assert auth.role_of_token(c, "p" * 20) is None  # the API token opens no dashboard
    assert auth.role_of_token(c, "") is None
    assert auth.api_role(c, "Bearer " + "p" * 20) == "producer"
    assert auth.api_role(c, "Bearer " + "a" * 20) == "producer"
    assert auth.api_role(c, "Bearer " + "v" * 20) == "viewer"
    assert auth.api_role(c, "p" * 20) is None


def test_a_session_ends_when_its_token_is_changed():
    session: dict = {}
    auth.log_in(session, "admin", "a" * 20)
    assert auth.role_of_session(config(), session) == "admin"
    assert auth.role_of_session(config(admin_token="b" * 20), session) is None
    assert "a" * 20 not in str(session)


def test_logging_in_replaces_the_csrf_token_seen_before():
    session: dict = {}
    before = auth.csrf_token(session)
    auth.log_in(session, "viewer", "v" * 20)
    assert auth.csrf_token(session) != before
    assert auth.csrf_ok(session, session["csrf"])
    assert not auth.csrf_ok(session, before) and not auth.csrf_ok(session, None)
    assert not auth.csrf_ok({}, "")


def test_viewers_see_no_address_and_no_one_sees_a_secret_anywhere_in_a_value():
    @dataclasses.dataclass
    class Row:
        note: str

    value = {"to": "reporter@example.com", "list": ["x a.b+c@mail.example.org y"],
             "row": Row("from Someone.Else@corp.example"), "n": 3,
             "error": "OperationalError: postgresql://app:hunter22@db/jobs refused"}

    for_viewer, for_admin = auth.shown(value, "viewer"), auth.shown(value, "admin")

    assert for_viewer == {"to": "r***@example.com", "list": ["x a***@mail.example.org y"],
                          "row": {"note": "from S***@corp.example"}, "n": 3,
                          "error": "OperationalError: postgresql://app:***@db/jobs refused"}
    assert for_admin["to"] == "reporter@example.com"
    assert "hunter22" not in str(for_admin)


def test_send_options_accept_delay_priority_and_an_idempotency_key():
    assert send_options({"delay": "1.5", "priority": "-10"}, " k-1 ") == {
        "delay": 1500, "priority": -10, "singleton_key": "api:k-1", "singleton_slot": 0}
    assert send_options({"delay": "0"}, None) == {}


@pytest.mark.parametrize("query,key", [({"delay": "inf"}, None), ({"priority": "1.5"}, None),
                                       ({"retries": "9"}, None), ({}, ""), ({}, "x" * 201),
                                       ({}, "a\nb")])
def test_bad_send_options_are_refused(query, key):
    with pytest.raises(ValueError):
        send_options(query, key)


def test_the_openapi_document_describes_each_job_types_payload_in_camel_case():
    class Notify(Payload):
        bug_report_id: UUID
        recipient_email: EmailStr

    def notify(payload: Notify) -> None:
        """Tell someone."""

    actor = SimpleNamespace(payload_model=Notify, queue_name="notify", fn=notify)
    document = openapi_document({"notify": actor})

    schema = document["components"]["schemas"]["Notify"]
    assert set(schema["properties"]) == {"bugReportId", "recipientEmail"}
    assert document["paths"]["/api/jobs/notify"]["post"]["description"] == "Tell someone."


def test_sparklines_and_state_bars_are_svg_without_inline_style():
    for picture in (charts.sparkline([0, 3, 1, 7]), charts.sparkline([]),
                    charts.state_bar({"done": 10, "dead": 1}), charts.state_bar({})):
        tree = ET.fromstring(str(picture))
        assert tree.tag == "svg"
        assert not any("style" in element.attrib for element in tree.iter())


def test_a_state_bar_shows_a_sliver_for_a_rare_state():
    tree = ET.fromstring(str(charts.state_bar({"done": 100_000, "dead": 1}, width=200)))
    widths = {rect.get("class"): float(rect.get("width", "0")) for rect in tree.iter("rect")}
    assert widths["s-dead"] >= 1.9 and sum(widths.values()) == pytest.approx(200)


def test_redirects_after_an_action_stay_on_this_site():
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)", ""):
        assert _safe_next(target, "/") == "/"
    assert _safe_next("/jobs?state=dead", "/") == "/jobs?state=dead"


def test_the_job_filter_drops_unknown_values_and_reads_the_keyset_cursor():
    where, _ = parse_filter({"state": "exploded", "range": "1y", "queue": "q",
                                  "before": "2026-01-01T00:00:00+00:00|"
                                            "0b3f0c1e-8e9a-4a57-9a51-3f6a8a3e5a10"})
    assert where.state is None and where.since is None and where.queue_name == "q"
    assert where.before_id == "0b3f0c1e-8e9a-4a57-9a51-3f6a8a3e5a10"
    assert parse_filter({"before": "garbage|x"})[0].before_at is None
    assert where.params(50)["error_like"] is None
    assert parse_filter({"error": "50%_off"})[0].params(1)["error_like"] == "%50\\%\\_off%"


def test_the_job_filter_reads_from_and_to_as_utc_and_ignores_garbage():
    where, chosen = parse_filter({"from": "2026-12-01T09:30", "to": "yesterday"})
    assert where.since is not None and where.since.isoformat() == "2026-12-01T09:30:00+00:00"
    assert where.until is None and chosen["to"] == ""


def test_a_patch_is_coloured_line_by_line_and_escaped():
    from web.pages import diff_lines

    shown = str(diff_lines("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-<old>\n+new"))
    assert '<span class="d-del">-&lt;old&gt;</span>' in shown
    assert '<span class="d-add">+new</span>' in shown and "--- a/x" in shown


def test_logins_from_a_client_that_keeps_failing_are_refused_for_a_while():
    now = [0.0]
    throttle = auth.LoginThrottle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.allowed("10.0.0.1")
        throttle.failed("10.0.0.1")

    assert not throttle.allowed("10.0.0.1")
    assert throttle.allowed("10.0.0.2")  # another client is not held back
    now[0] = 61
    assert throttle.allowed("10.0.0.1")


def test_the_priority_filter_takes_whole_numbers_only():
    assert parse_filter({"priority": "-10"})[0].priority == -10
    assert parse_filter({"priority": "1e9"})[0].priority is None
    assert parse_filter({"priority": "99999"})[0].priority is None
