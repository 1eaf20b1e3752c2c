"""The producer API: enqueue and look up jobs over HTTP, for producers that
are not Python (the portal), with an OpenAPI document generated from the job
types' payload models.

    POST /api/jobs/{job_type}    body: the payload as JSON
         ?delay=<seconds>&priority=<int>, header Idempotency-Key: <key>
         201 {"ok": true, "data": {"id": ..., "state": "queued" | "delayed"}}
         200 the same, with "deduplicated": true, when the key holds a job already
         422 {"ok": false, "error": ..., "fields": [{"field", "message"}]}: nothing enqueued
    GET  /api/jobs/{id}          state, attempts, last error, result
    GET  /api/openapi.json

Every call needs ``Authorization: Bearer <token>``: the API or admin token to
enqueue, the viewer token is enough to read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pgbroker import EnqueueError, JobNotFound, PostgresBroker, jobs

from .auth import api_role, shown
from .config import WebConfig

logger = logging.getLogger("pts_jobs.web.api")

MAX_BODY_BYTES = 1024 * 1024
MAX_DELAY_SECONDS = 30 * 24 * 3600
PRIORITY_RANGE = (-100, 100)
MAX_KEY_LENGTH = 200


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message, **extra}, status_code=status,
                        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)


class ProducerApi:
    """The /api routes over ``broker``, for the job types in ``job_types``."""

    def __init__(self, broker: PostgresBroker, config: WebConfig,
                 job_types: Mapping[str, Any]) -> None:
        self.broker = broker
        self.config = config
        self.job_types = dict(job_types)

    def routes(self) -> list[Route]:
        return [
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/jobs/{job_type}", self.enqueue, methods=["POST"]),
            Route("/api/jobs/{job_id}", self.show, methods=["GET"]),
        ]

    def _role(self, request: Request) -> str | None:
        return api_role(self.config, request.headers.get("authorization"))

    async def enqueue(self, request: Request) -> JSONResponse:
        role = self._role(request)
        if role is None:
            return error(401, "unauthorized")
        if role != "producer":
            return error(403, "this token may only read")
        name = request.path_params["job_type"]
        actor = self.job_types.get(name)
        if actor is None:
            return error(404, f"no job type {name!r}", jobTypes=sorted(self.job_types))
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"payload over {MAX_BODY_BYTES:,} bytes")
        try:
            payload = json.loads(body or b"{}")
        except ValueError as problem:
            return error(422, f"body is not JSON: {problem}", fields=[])
        if not isinstance(payload, dict):
            return error(422, "the payload must be a JSON object", fields=[])
        try:
            options = send_options(request.query_params, request.headers.get("idempotency-key"))
        except ValueError as problem:
            return error(422, str(problem), fields=[])

        try:
            model = actor.payload_model.model_validate(payload)
        except ValidationError as problem:
            fields = [{"field": ".".join(str(p) for p in e["loc"]) or "(payload)",
                       "message": e["msg"]} for e in problem.errors(include_url=False)]
            return error(422, f"invalid payload for {name}", fields=fields)
        kwargs = model.model_dump(mode="json")
        try:
            message = await run_in_threadpool(
                actor.send_with_options, kwargs=kwargs, **options)
        except EnqueueError as problem:
            logger.warning("enqueue of %s failed: %s", name, problem)
            return error(503, "could not enqueue: the database is unavailable")
        deduplicated = bool(message.options.get("deduplicated"))
        logger.info("api enqueued %s job %s%s", name, message.message_id,
                    " (idempotency key held)" if deduplicated else "")
        data = {"id": message.message_id, "jobType": name, "queue": actor.queue_name,
                "state": "delayed" if options.get("delay") else "queued"}
        if deduplicated:
            data["deduplicated"] = True
            try:
                job = await run_in_threadpool(jobs.get_job, message.message_id,
                                              broker=self.broker)
                data["state"] = job.state
            except JobNotFound:
                pass
        return JSONResponse({"ok": True, "data": data}, status_code=200 if deduplicated else 201,
                            headers={"Location": f"/api/jobs/{message.message_id}"})

    async def show(self, request: Request) -> JSONResponse:
        role = self._role(request)
        if role is None:
            return error(401, "unauthorized")
        try:
            job = await run_in_threadpool(jobs.get_job, request.path_params["job_id"],
                                          broker=self.broker)
        except JobNotFound:
            return error(404, "no such job")
        result: Any = job.result
        if result is not None:
            with contextlib.suppress(ValueError):
                result = json.loads(result)
        data = {
            "id": job.id, "jobType": job.actor_name, "queue": job.queue_name,
            "state": job.state, "attempts": job.attempts, "lastError": job.last_error,
            "result": result, "enqueuedAt": _iso(job.enqueued_at),
            "availableAt": _iso(job.available_at), "startedAt": _iso(job.started_at),
            "finishedAt": _iso(job.finished_at),
        }
        return JSONResponse({"ok": True, "data": shown(data, role)})

    async def openapi(self, request: Request) -> JSONResponse:
        if self._role(request) is None:
            return error(401, "unauthorized")
        return JSONResponse(openapi_document(self.job_types))


def send_options(query: Mapping[str, str], idempotency_key: str | None) -> dict[str, Any]:
    """dramatiq send options from the query string and Idempotency-Key header.

    Raises:
        ValueError: naming the parameter that is wrong.
    """
    options: dict[str, Any] = {}
    unknown = set(query) - {"delay", "priority"}
    if unknown:
        raise ValueError(f"unknown query parameters: {sorted(unknown)}")
    if "delay" in query:
        try:
            delay = float(query["delay"])
        except ValueError:
            raise ValueError("delay: a number of seconds") from None
        if not math.isfinite(delay) or not 0 <= delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay: between 0 and {MAX_DELAY_SECONDS} seconds")
        if delay:
            options["delay"] = int(delay * 1000)
    if "priority" in query:
        try:
            priority = int(query["priority"])
        except ValueError:
            raise ValueError("priority: a whole number (lower runs first)") from None
        if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
            raise ValueError(f"priority: between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}")
        options["priority"] = priority
    if idempotency_key is not None:
        key = idempotency_key.strip()
        if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise ValueError(f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable characters")
        # One job per key and queue for as long as the job is kept (slot 0).
        options.update(singleton_key=f"api:{key}", singleton_slot=0)
    return options


def openapi_document(job_types: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.1 for the producer API, one operation per job type."""
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["ok", "error"], "properties": {
            "ok": {"const": False}, "error": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}}}}},
        "Enqueued": {"type": "object", "required": ["ok", "data"], "properties": {
            "ok": {"const": True}, "data": {"type": "object", "required": ["id", "state"],
                                            "properties": {
                "id": {"type": "string", "format": "uuid"}, "jobType": {"type": "string"},
                "queue": {"type": "string"}, "state": {"enum": ["queued", "delayed"]},
                "deduplicated": {"type": "boolean"}}}}},
        "Job": {"type": "object", "required": ["ok", "data"], "properties": {
            "ok": {"const": True}, "data": {"type": "object", "properties": {
                "id": {"type": "string", "format": "uuid"}, "jobType": {"type": "string"},
                "queue": {"type": "string"},
                "state": {"enum": ["queued", "delayed", "running", "done", "dead", "cancelled"]},
                "attempts": {"type": "integer"}, "lastError": {"type": ["string", "null"]},
                "result": {}, "enqueuedAt": {"type": "string", "format": "date-time"},
                "availableAt": {"type": "string", "format": "date-time"},
                "startedAt": {"type": ["string", "null"], "format": "date-time"},
                "finishedAt": {"type": ["string", "null"], "format": "date-time"}}}}},
    }
    errors = {str(code): {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((401, "no valid bearer token"), (403, "token may only read"))}
    paths: dict[str, Any] = {}
    for name, actor in sorted(job_types.items()):
        model = actor.payload_model
        schema = model.model_json_schema(by_alias=True,
                                         ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        paths[f"/api/jobs/{name}"] = {"post": {
            "operationId": f"enqueue_{name}",
            "summary": f"Enqueue a {name} job (queue {actor.queue_name})",
            "description": (actor.fn.__doc__ or "").strip() or None,
            "tags": ["jobs"],
            "parameters": [
                {"name": "delay", "in": "query", "required": False,
                 "description": "seconds before the job is due",
                 "schema": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_SECONDS}},
                {"name": "priority", "in": "query", "required": False,
                 "description": "lower runs first (default: the job type's)",
                 "schema": {"type": "integer", "minimum": PRIORITY_RANGE[0],
                            "maximum": PRIORITY_RANGE[1]}},
                {"name": "Idempotency-Key", "in": "header", "required": False,
                 "description": "one job per key: a repeat answers 200 with the first job",
                 "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH}},
            ],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}},
            "responses": {
                "201": {"description": "enqueued", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Enqueued"}}}},
                "200": {"description": "the idempotency key holds this job already",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Enqueued"}}}},
                "422": {"description": "invalid payload: nothing enqueued",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"}}}},
                **errors,
            },
        }}
    paths["/api/jobs/{id}"] = {"get": {
        "operationId": "get_job", "summary": "A job's state, attempts, last error and result",
        "tags": ["jobs"],
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}],
        "responses": {"200": {"description": "the job", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Job"}}}},
            "404": {"description": "no such job"}, **errors},
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "pts-jobs producer API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
