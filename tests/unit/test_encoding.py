"""Messages through Dramatiq's global encoder, as the broker stores them."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import dramatiq
import pytest
from dramatiq.encoder import JSONEncoder, PickleEncoder
from dramatiq.errors import DecodeError
from dramatiq.message import Message

from pgbroker import InvalidMessage
from pgbroker.encoding import as_json_text, decode, encode


@pytest.fixture
def global_encoder():
    def use(encoder):
        dramatiq.set_encoder(encoder)
    yield use
    dramatiq.set_encoder(JSONEncoder())


def message(*args, **kwargs) -> Message:
    return Message(queue_name="q", actor_name="a", args=args, kwargs=kwargs, options={})


def test_the_json_encoder_writes_the_jsonb_column_only():
    text, data = encode(message(1, key="value"))
    assert data is None
    assert json.loads(text)["kwargs"] == {"key": "value"}
    assert decode(text, None) == message(1, key="value").copy(
        message_id=json.loads(text)["message_id"],
        message_timestamp=json.loads(text)["message_timestamp"])


def test_pickle_is_kept_as_bytes_with_readable_routing_fields(global_encoder):
    global_encoder(PickleEncoder())
    sent = message({1, 2}, when=b"\x00raw")
    text, data = encode(sent)
    assert data is not None
    assert json.loads(text) == {"queue_name": "q", "actor_name": "a",
                                "message_id": sent.message_id,
                                "message_timestamp": sent.message_timestamp}
    assert decode(text, data) == sent


def test_a_row_written_as_json_is_read_even_when_the_encoder_is_pickle(global_encoder):
    text, _ = encode(message(3))  # as add_job() in SQL or dramatiq-pg would write it
    global_encoder(PickleEncoder())
    assert decode(text, None).args == (3,)


@pytest.mark.parametrize("bad", [math.nan, "nul\x00", "\ud800"])
def test_what_postgresql_cannot_store_fails_in_the_producer(bad):
    with pytest.raises(InvalidMessage):
        encode(message(bad))


def test_a_message_over_the_size_limit_fails_in_the_producer():
    with pytest.raises(InvalidMessage, match="over the"):
        encode(message("x" * 2000), max_bytes=1000)


def test_undecodable_text_raises_decode_error():
    with pytest.raises(DecodeError):
        decode("{not json", None)


def test_only_storable_json_is_offered_to_a_jsonb_column():
    assert as_json_text(b'{"a": 1}') == '{"a": 1}'
    assert as_json_text(b"[1]") is None  # a message must be an object
    assert as_json_text(b"[1]", objects_only=False) == "[1]"
    assert as_json_text(b'{"a": NaN}') is None
    assert as_json_text(b"\x80\x04pickle") is None


@pytest.mark.parametrize("args", [
    (1, -2.5, 10**30, True, None),
    ("héllo ✓", "tab\tand\nnewline", 'quote " and \\ backslash', "\U0001f600"),
    ({"nested": [{"a": (1, 2)}, []], "": {}},),
])
def test_messages_are_the_json_the_standard_library_writes(args):
    sent = message(*args, key=list(args))
    text, _ = encode(sent)
    assert text == json.dumps(sent.asdict(), ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"))


def test_a_message_that_contains_itself_fails_in_the_producer():
    looped: list = []
    looped.append(looped)
    with pytest.raises(InvalidMessage, match="not valid JSON"):
        encode(message(looped))


def test_threads_encoding_at_once_each_get_their_own_message():
    sent = [message(index, text="x" * index) for index in range(200)]
    expected = [encode(m)[0] for m in sent]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            assert list(pool.map(lambda m: encode(m)[0], sent)) == expected
