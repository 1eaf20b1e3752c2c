"""COPY's text format: every field escaped so it arrives as written."""

from __future__ import annotations

import pytest

from pgbroker.bulk import CopyStream, field, line


def test_special_characters_are_escaped() -> None:
    assert field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert field("plain") == "plain"


def test_null_bytes_and_numbers() -> None:
    assert field(None) == "\\N"
    assert field("\\N") == "\\\\N"  # the text, not a NULL
    assert field(b"\x00\xff") == "\\\\x00ff"
    assert field(7) == "7"


@pytest.mark.parametrize("text", [
    "plain", "", "tab\there", "new\nline", "carriage\rreturn", "back\\slash", "\\N",
    "vertical\x0btab", "nul\x00", "line\u2028separator", "no-break\u00a0space", "é中😀",
])
def test_text_is_escaped_exactly_as_translating_all_of_it_would(text) -> None:
    everything_escaped = text.translate(str.maketrans(
        {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}))
    assert field(text) == everything_escaped
    assert line((text, None, text)) == f"{everything_escaped}\t\\N\t{everything_escaped}\n"


def test_a_row_is_a_line_of_tab_separated_fields() -> None:
    assert line(("a", None, 1)) + line(("b\tc", b"", 2)) == "a\t\\N\t1\nb\\tc\t\\\\x\t2\n"


def test_a_stream_gives_whole_lines_until_a_read_has_its_size():
    stream = CopyStream(("row", i) for i in range(1000))
    first = stream.read(100)
    assert first.endswith("\n") and 100 <= len(first) < 120
    rest = stream.read(-1)
    assert first + rest == "".join(line(("row", i)) for i in range(1000))
    assert stream.rows == 1000
    assert stream.read(100) == ""


def test_a_stream_keeps_the_error_that_ended_it():
    def rows():
        yield ("fine",)
        raise ValueError("bad message")

    stream = CopyStream(rows())
    with pytest.raises(ValueError):
        stream.read(1 << 20)
    assert isinstance(stream.error, ValueError)
