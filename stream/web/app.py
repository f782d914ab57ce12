"""The web application: three pages (candidates, object, status), their JSON, and the static files.

Pages are HTML shells drawn by ``static/*.js`` from the JSON endpoints, with plotly.js served from the
installed plotly package (``/static/plotly.min.js``): nothing is loaded from the internet. Read-only:
only GET routes. With ``web.token`` set, every request needs ``Authorization: Bearer TOKEN`` or the
cookie that ``/login?token=TOKEN`` sets. A bad parameter is a 422 with a message naming it, an unknown
object a 404, an unreachable Redis a 503.
"""
import hmac
import logging
from pathlib import Path

import plotly
import redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from models.taxonomy import CLASS_NAMES
from stream.errors import ConfigError
from stream.keys import Keys
from stream.web.query import BadInput, candidate_query, object_id as valid_object_id
from stream.show import NoSuchObject
from stream.web.read import read_candidates, read_object_page, read_status

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
TOKEN_COOKIE = "alertformer_token"
# Scripts and styles from this server only (no inline script: injected markup cannot run); plotly sets
# inline styles on its elements, and draws text with data: fonts.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'")


class TokenAuth(BaseHTTPMiddleware):
    """Every request but ``/login`` needs the token, as a bearer header or the cookie `TOKEN_COOKIE`."""

    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token.encode()

    def _allowed(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        offered = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
        return hmac.compare_digest(offered.encode(), self.token)

    async def dispatch(self, request: Request, call_next):
        if request.url.path == "/login":
            offered = request.query_params.get("token", "")
            if not hmac.compare_digest(offered.encode(), self.token):
                return PlainTextResponse("token: not the configured web.token", status_code=401)
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, offered, httponly=True, samesite="strict")
            return response
        if not self._allowed(request):
            return PlainTextResponse("this server needs its token: 'Authorization: Bearer TOKEN', or open "
                                     "/login?token=TOKEN once", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def create_app(client: redis.Redis, keys: Keys, rules: list[str], token: str | None = None,
               refresh_s: float = 5.0, registry_path: str | None = None) -> Starlette:
    """The app over `client` (``decode_responses=False``), the prefix of `keys`, and the follow-up rule names
    `rules` (whose journal the object page reads)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes .html templates

    def page(request: Request, name: str, status_code: int = 200, **context) -> Response:
        return templates.TemplateResponse(request, name, {"refresh_s": refresh_s, "prefix": keys.prefix, **context},
                                          status_code=status_code)

    def candidates_page(request: Request) -> Response:
        return page(request, "candidates.html", class_names=CLASS_NAMES)

    def status_page(request: Request) -> Response:
        return page(request, "status.html")

    def object_page(request: Request) -> Response:
        oid = valid_object_id(request.path_params["object_id"])
        read_object_page(client, keys, oid, rules)  # 404 before the shell is drawn
        return page(request, "object.html", object_id=oid)

    def api_candidates(request: Request) -> Response:
        return JSONResponse(read_candidates(client, keys, candidate_query(request.query_params)))

    def api_object(request: Request) -> Response:
        oid = valid_object_id(request.path_params["object_id"])
        return JSONResponse(read_object_page(client, keys, oid, rules))

    def api_status(request: Request) -> Response:
        return JSONResponse(read_status(client, keys, registry_path))

    def plotly_js(request: Request) -> Response:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error(request: Request, status: int, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        return page(request, "error.html", status_code=status, status=status, message=message)

    async def bad_input(request: Request, exc: BadInput) -> Response:
        return error(request, 422, str(exc))

    async def unknown_object(request: Request, exc: NoSuchObject) -> Response:
        return error(request, 404, str(exc))

    async def redis_down(request: Request, exc: ConfigError) -> Response:
        return error(request, 503, str(exc))

    async def redis_unreachable(request: Request, exc: redis.RedisError) -> Response:
        return error(request, 503, f"redis.url: cannot read the state ({exc})")

    async def not_found(request: Request, exc) -> Response:
        return error(request, getattr(exc, "status_code", 404), getattr(exc, "detail", "not found"))

    routes = [
        Route("/", candidates_page), Route("/status", status_page), Route("/object/{object_id}", object_page),
        Route("/api/candidates", api_candidates), Route("/api/status", api_status),
        Route("/api/object/{object_id}", api_object),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)] + ([Middleware(TokenAuth, token=token)] if token else [])
    return Starlette(routes=routes, middleware=middleware, exception_handlers={
        BadInput: bad_input, NoSuchObject: unknown_object, ConfigError: redis_down, redis.RedisError: redis_unreachable,
        404: not_found,
        405: not_found})
