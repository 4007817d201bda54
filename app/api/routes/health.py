from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz", summary="Liveness: answers without calling Anthropic")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
