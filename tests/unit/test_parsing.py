"""Parsing bug reports: free text, intake JSON, fingerprints, severity."""

from __future__ import annotations

import pytest

from pipeline.parsing import StackFrame, UnusableReport, fingerprint, parse_report

FREE_TEXT = """Checkout page crashes when the cart is empty

Steps to reproduce:
1. Open https://shop.example.com/checkout?id=42
2. Remove every item
3. Press "Pay"

Expected: a message saying the cart is empty
Actual: a blank page

TypeError: Cannot read properties of undefined (reading 'total')
    at computeTotal (https://shop.example.com/static/cart.js:120:15)
    at Checkout.render (https://shop.example.com/static/checkout.js:88:3)

Chrome 120.0.6099 on Windows, production
"""


def test_free_text_yields_every_field():
    report = parse_report(FREE_TEXT, None)

    assert report.title == "Checkout page crashes when the cart is empty"
    assert report.steps_to_reproduce == [
        "Open https://shop.example.com/checkout?id=42", "Remove every item", 'Press "Pay"']
    assert report.expected_behavior == "a message saying the cart is empty"
    assert report.actual_behavior == "a blank page"
    assert report.error_type == "TypeError"
    assert report.error_message == "Cannot read properties of undefined (reading 'total')"
    assert report.stack_frames[0] == StackFrame(
        "computeTotal", "https://shop.example.com/static/cart.js", 120)
    assert report.page_url == "https://shop.example.com/checkout?id=42"
    assert report.environment == {"browser": "Chrome 120.0.6099", "os": "Windows",
                                  "environment": "production"}
    assert report.severity == "high"
    assert report.fingerprint and len(report.fingerprint) == 64


def test_the_intake_forms_json_wins_over_the_text():
    form = {
        "title": "Payment fails for everyone",
        "stepsToReproduce": "1. Add an item\n2. Pay",
        "expectedBehavior": "paid",
        "error": {"type": "PaymentError", "message": "card 4242 declined",
                  "stack": 'File "pay.py", line 12, in charge'},
        "pageUrl": "https://shop.example.com/pay",
        "browser": "Firefox 121",
    }

    report = parse_report("some text", form)

    assert report.title == "Payment fails for everyone"
    assert report.steps_to_reproduce == ["Add an item", "Pay"]
    assert report.error_type == "PaymentError"
    assert report.stack_frames == [StackFrame("charge", "pay.py", 12)]
    assert report.environment["browser"] == "Firefox 121"
    assert report.severity == "critical"  # "for everyone"


def test_the_same_error_with_other_numbers_and_values_has_the_same_fingerprint():
    frames = [StackFrame("load", "/app/models.py", 10)]
    first = fingerprint("KeyError", "user 1234 missing key 'a1b2'", frames, "t1")
    again = fingerprint("KeyError", "user 98 missing key 'zz'",
                        [StackFrame("load", "/srv/other/models.py", 77)], "t2")
    other = fingerprint("ValueError", "user 1234 missing key 'a1b2'", frames, "t1")

    assert first == again
    assert first != other


def test_a_cosmetic_report_is_low_severity():
    assert parse_report("Typo on the about page: 'teh' instead of 'the'", None).severity == "low"


@pytest.mark.parametrize(("text", "form"), [(None, None), ("   \n  ", {}),
                                            ("", {"title": "", "browser": ""})])
def test_an_empty_report_is_unusable_with_the_reason(text, form):
    with pytest.raises(UnusableReport, match="no text and no form fields"):
        parse_report(text, form)
