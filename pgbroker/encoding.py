"""Messages and results as the broker stores them, through Dramatiq's encoder.

Whatever ``dramatiq.get_encoder()`` writes is what is stored and what the
consumer decodes. When that is a JSON object (Dramatiq's default JSON encoder,
or a JSON encoder of one's own) it goes to the ``message`` JSONB column exactly
as dramatiq-pg stores it; any other encoding (pickle, msgpack) is kept as bytes
in ``message_bytes``, with the routing fields in ``message`` so SQL, the CLI and
a dashboard still see which actor and queue a job is for.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.encoder import Encoder, JSONEncoder
from dramatiq.errors import DecodeError
from dramatiq.message import Message

from .errors import InvalidMessage

# Payloads are ids and small documents; a megabyte of JSON is a mistake.
MAX_MESSAGE_BYTES = 1024 * 1024


def _strict_json() -> Callable[[Any], str]:
    """Dramatiq's JSON, made strict (PostgreSQL refuses NaN) and compact.

    One encoder for every message. ``JSONEncoder.encode`` builds its C encoder
    anew at each call (1.7 us of a 4.4-us message); this one is built once. It
    keeps no record of the containers it is inside (``markers``), so that
    threads can share it: a message that contains itself raises RecursionError
    instead of ValueError. Where there is no C encoder (PyPy), the library's
    own path.
    """
    options = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    # Not in the stubs: the C half of json.encoder, None where it is missing.
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:
        return options.encode
    chunks = make_encoder(None, options.default, json.encoder.encode_basestring, None,
                          options.key_separator, options.item_separator,
                          options.sort_keys, options.skipkeys, options.allow_nan)
    return lambda value: "".join(chunks(value, 0))


_strict_json_text = _strict_json()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def as_json_text(data: bytes, *, objects_only: bool = True) -> str | None:
    """``data`` as text for a JSONB column if it is JSON PostgreSQL can store
    (no NaN, no NUL; an object unless not ``objects_only``), else None."""
    try:
        text = data.decode("utf-8")
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError):
        return None
    if (objects_only and not isinstance(parsed, dict)) or "\\u0000" in text:
        return None
    return text


def encode(message: Message | MessageProxy, *, encoder: Encoder | None = None,
           max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[str, bytes | None]:
    """The message as (JSON text for ``message``, bytes for ``message_bytes`` or None).

    Raises:
        InvalidMessage: the encoder refused it; with the JSON encoder: NaN or
            infinity, a NUL character, a lone surrogate, an object JSON cannot
            represent (pass pydantic models as ``model_dump(mode="json")``); or
            more than ``max_bytes`` once encoded.
    """
    plain = message if isinstance(message, Message) else message._message
    encoder = encoder or dramatiq.get_encoder()
    # The fields of Message.asdict(), without its per-call dataclass introspection.
    fields = {
        "queue_name": plain.queue_name,
        "actor_name": plain.actor_name,
        "args": plain.args,
        "kwargs": plain.kwargs,
        "options": plain.options,
        "message_id": plain.message_id,
        "message_timestamp": plain.message_timestamp,
    }
    if type(encoder) is JSONEncoder:
        # Dramatiq's own encoder, made strict: PostgreSQL refuses NaN and NUL.
        try:
            text = _strict_json_text(fields)
        except (TypeError, ValueError, RecursionError) as error:
            raise InvalidMessage(
                f"message for {plain.actor_name!r} is not valid JSON: {error}"
            ) from error
        if "\\u0000" in text:
            raise InvalidMessage(
                f"message for {plain.actor_name!r} contains a NUL character (\\u0000), "
                "which PostgreSQL cannot store"
            )
        if text.isascii():  # a flag of the string: no need to encode it to count
            size = len(text)
        else:
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError as error:
                raise InvalidMessage(
                    f"message for {plain.actor_name!r} is not valid Unicode: {error.reason}"
                ) from None
        _check_size(plain, size, max_bytes)
        return text, None
    try:
        data = encoder.encode(fields)
    except Exception as error:
        raise InvalidMessage(
            f"message for {plain.actor_name!r} cannot be encoded by "
            f"{type(encoder).__name__}: {error}"
        ) from error
    _check_size(plain, len(data), max_bytes)
    as_json = as_json_text(data)
    if as_json is not None:
        return as_json, None
    routing = {key: fields[key] for key in
               ("queue_name", "actor_name", "message_id", "message_timestamp")}
    return json.dumps(routing, ensure_ascii=False, separators=(",", ":")), data


def _check_size(message: Message, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InvalidMessage(
            f"message for {message.actor_name!r} is {size:,} bytes, over the "
            f"{max_bytes:,}-byte limit: store large data elsewhere and send its id"
        )


def decode(text: str, data: bytes | memoryview | None) -> Message:
    """The message stored as ``text`` (JSONB) and ``data`` (bytes, if any).

    Rows without bytes are JSON: written by a JSON encoder, by dramatiq-pg, or
    by ``add_job()`` in SQL; if the configured encoder cannot read them, they
    are read as plain JSON.

    Raises:
        DecodeError: neither reads it.
    """
    if data is not None:
        return Message.decode(bytes(data))
    try:
        return Message.decode(text.encode("utf-8"))
    except DecodeError:
        if isinstance(dramatiq.get_encoder(), JSONEncoder):
            raise
        try:
            fields = json.loads(text)
            fields["args"] = tuple(fields["args"])
            return Message(**fields)
        except (KeyError, TypeError, ValueError) as error:
            raise DecodeError(f"failed to decode message {text!r}", text, error) from None
