from fastapi import APIRouter, Response

from app.http.deps import DrainingDep

router = APIRouter()


@router.get("/healthz", summary="Liveness: answers without calling Anthropic")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: 503 once the worker is shutting down, so load balancers stop sending to it",
    responses={503: {"description": "Shutting down: streams in flight are finishing."}},
)
async def readyz(draining: DrainingDep, response: Response) -> dict[str, str]:
    if draining.started.is_set():
        response.status_code = 503
        return {"status": "draining"}
    return {"status": "ready"}
