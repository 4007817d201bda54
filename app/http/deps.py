"""Dependencies that routes declare; the objects behind them live on `app.state`."""

# All async: FastAPI runs a plain `def` dependency in a thread pool, which measured at a fifth
# of the CPU of a non-streaming request.

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.config import Settings
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


SettingsDep = Annotated[Settings, Depends(get_settings)]
UpstreamDep = Annotated[Upstream, Depends(get_upstream)]
OpenStreamsDep = Annotated[OpenStreams, Depends(get_open_streams)]
DrainingDep = Annotated[Draining, Depends(get_draining)]
