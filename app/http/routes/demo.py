"""GET /: the demo chat page (CHAT_DEMO_PAGE), the reference browser client of `/chat`.

Static files served as they are: no build step, nothing from a CDN.
"""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[2] / "static"

# The page needs nothing but its own files and /chat; anything else a page could be made to
# load (an injected script or image) is refused by the browser.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def demo_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": _CSP})


def install_demo_page(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
