"""COPY's text format: every field escaped so it arrives as written."""

from __future__ import annotations

from pgbroker.bulk import copy_text, field


def test_special_characters_are_escaped() -> None:
    assert field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert field("plain") == "plain"


def test_null_bytes_and_numbers() -> None:
    assert field(None) == "\\N"
    assert field("\\N") == "\\\\N"  # the text, not a NULL
    assert field(b"\x00\xff") == "\\\\x00ff"
    assert field(7) == "7"


def test_a_row_is_a_line_of_tab_separated_fields() -> None:
    assert copy_text([("a", None, 1), ("b\tc", b"", 2)]) == "a\t\\N\t1\nb\\tc\t\\\\x\t2\n"
