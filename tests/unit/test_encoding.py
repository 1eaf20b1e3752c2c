"""Messages through Dramatiq's global encoder, as the broker stores them."""

from __future__ import annotations

import json
import math

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
