"""GET /metrics: the Prometheus text format, for the whole container under gunicorn."""

from fastapi import APIRouter, Response

from app.http.deps import SettingsDep
from app.observability.metrics import exposition

router = APIRouter()


# Out of the OpenAPI schema: it is for Prometheus, not for the frontend.
@router.get("/metrics", include_in_schema=False)
async def metrics(settings: SettingsDep) -> Response:
    body, content_type = exposition(settings.prometheus_multiproc_dir)
    return Response(body, media_type=content_type)
