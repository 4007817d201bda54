"""Dependencies that routes declare; the objects behind them live on `app.state`."""

# All async: FastAPI runs a plain `def` dependency in a thread pool, which measured at a fifth
# of the CPU of a non-streaming request.

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints, TypeAdapter, ValidationError

from app.config import Settings
from app.resumable.resumption import Resumption
from app.streaming.response import OpenStreams
from app.streaming.shutdown import Draining
from app.upstream.stream import Upstream


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_upstream(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream


async def get_open_streams(request: Request) -> OpenStreams:
    streams: OpenStreams = request.app.state.open_streams
    return streams


async def get_resumption(request: Request) -> Resumption | None:
    """None when resumption is off (no CHAT_REDIS_URL)."""
    resumption: Resumption | None = request.app.state.resumption
    return resumption


async def get_draining(request: Request) -> Draining:
    draining: Draining = request.app.state.draining
    return draining


async def require_json(request: Request) -> None:
    """A body in another format would otherwise surface as a puzzling validation error."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            415,
            detail={
                "type": "unsupported_media_type",
                "message": "Send the request body as JSON, with Content-Type: application/json.",
            },
        )


# Anthropic takes at most 256 characters in metadata.user_id; the characters are those of ids,
# hashes and namespaced ids ("tenant:42"), so nothing that could break a log line reaches it.
END_USER_ID_PATTERN = r"^[A-Za-z0-9._:@-]*$"
END_USER_ID_MAX_LENGTH = 256
_END_USER_ID: TypeAdapter[str] = TypeAdapter(
    Annotated[str, StringConstraints(max_length=END_USER_ID_MAX_LENGTH, pattern=END_USER_ID_PATTERN)]
)


async def get_end_user_id(request: Request) -> str | None:
    """The gateway's end-user id, from the header CHAT_END_USER_HEADER names; empty is none."""
    header: str = request.app.state.settings.end_user_header
    values = request.headers.getlist(header)
    if not values:
        return None
    loc = ("header", header)
    if len(values) > 1:
        # A gateway that adds its header beside the client's would let the client choose.
        raise RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": "Value error, send the header once", "input": values}]
        )
    try:
        end_user_id = _END_USER_ID.validate_python(values[0])
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": loc} for error in exc.errors(include_url=False)]
        ) from None
    return end_user_id or None


SettingsDep = Annotated[Settings, Depends(get_settings)]
UpstreamDep = Annotated[Upstream, Depends(get_upstream)]
OpenStreamsDep = Annotated[OpenStreams, Depends(get_open_streams)]
ResumptionDep = Annotated[Resumption | None, Depends(get_resumption)]
DrainingDep = Annotated[Draining, Depends(get_draining)]
EndUserIdDep = Annotated[str | None, Depends(get_end_user_id)]
