"""The web application: the drawing page, and the JSON API it and other clients use.

    GET  /          the page (page/index.html, with page.js and page.css under /page/)
    POST /predict   an image, as the raw body or as the multipart field `file`
    GET  /model     the run: its folder, dataset, classes, test accuracy
    GET  /health    {"status": "ok"} while the model is loaded (it loads before the server starts)
    POST /collect?label=<class>   an image and its right label, kept in serve's collect_dir
                    (serving/collect.py); 404 when serve was started without one

Every error is JSON, {"error": "<one line>"}, with a 4xx status: 400 no image in the request,
403 another site's page, 408 a body too slow, 413 too many bytes or pixels, 415 not an image,
421 a Host that is not this server's, 422 nothing to read (blank) or a label that is not a class,
507 a label that holds its most drawings or a disk that is full, 404 and 405 as usual; 500
with the error's first line if the server itself fails. An error ends that request only; the
server goes on. limits.py says what the server holds to.
"""

import asyncio
import logging
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mnist_hydra.errors import BlankImage, ImageError, ImageTooLarge, NotAnImage, first_line
from mnist_hydra.serving.classifier import Classifier
from mnist_hydra.serving.collect import Collector, LabelFull
from mnist_hydra.serving.limits import Limits, SameSiteOnly

log = logging.getLogger(__name__)
# Resolved: an editable install links each file into a tree of its own (Makefile), and Starlette's
# StaticFiles serves no file that is a link out of its folder.
PAGE = Path(__file__).resolve().parent / "page"
STATUS = {ImageTooLarge: 413, NotAnImage: 415, BlankImage: 422}  # any other ImageError: 400


def create_app(classifier: Classifier, limits: Limits, collector: Optional[Collector] = None) -> FastAPI:
    # No /docs: FastAPI's interactive docs load their scripts from a CDN; /openapi.json stays.
    app = FastAPI(title="mnist-hydra", docs_url=None, redoc_url=None)
    app.add_middleware(SameSiteOnly, hosts=limits.hosts)
    described = {**classifier.describe(), "collect": collector.describe() if collector else None}
    decoding = asyncio.Semaphore(limits.decoders)  # images decoded at once: each may cost ~100 MB

    @app.exception_handler(ImageError)
    async def image_error(request: Request, error: ImageError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=STATUS.get(type(error), 400))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)  # the traceback, in the log
        return JSONResponse({"error": f"the server failed: {first_line(error)}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE / "index.html")

    app.mount("/page", StaticFiles(directory=PAGE), name="page")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "run": described["run"]}

    @app.get("/model")
    async def model() -> dict:
        return described

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        data, name = await read_image(request, limits)
        async with decoding:  # preparing the image and the model call are CPU work: off the event loop
            return await run_in_threadpool(classifier.classify, data, name, limits.max_pixels)

    @app.post("/collect")
    async def collect(request: Request) -> dict:
        if collector is None:
            raise HTTPException(404, "collecting is off: start serve with collect_dir=<folder>")
        label = request.query_params.get("label")
        if label is None:
            raise HTTPException(400, "no label: POST /collect?label=<the image's class>")
        try:
            collector.check_label(label)  # before the body is read or decoded
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        data, name = await read_image(request, limits)
        async with decoding:
            seen, drawing = await run_in_threadpool(classifier.views, data, name, limits.max_pixels)
        try:
            return await run_in_threadpool(collector.save, label, seen, drawing)
        except LabelFull as error:
            raise HTTPException(507, str(error)) from None
        except OSError as error:  # a full disk: nothing of it was kept
            raise HTTPException(507, f"the drawing was not saved: {error.strerror or error}") from None

    return app


async def read_image(request: Request, limits: Limits) -> tuple[bytes, str]:
    """The uploaded image's bytes and a name for it, reading no more than `max_bytes`, for no
    longer than `timeout` seconds."""
    try:
        async with asyncio.timeout(limits.timeout):
            body = await _read_body(request, limits.max_bytes)
    except TimeoutError:
        raise HTTPException(408, f"the request's body did not arrive within {limits.timeout:g} s") from None
    data, name = bytes(body), "the request's body"
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):  # types ignore case

        async def replay() -> dict:  # the body, already read, for the form parser
            return {"type": "http.request", "body": data, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ImageError("the form has no file field named `file`: send the image as `file`")
        data, name = await upload.read(), upload.filename or "the uploaded file"
    if not data:
        raise ImageError(
            "no image in the request: send a PNG or JPEG as the body or as the form field `file`"
        )
    return data, name


async def _read_body(request: Request, max_bytes: int) -> bytearray:
    too_large = ImageTooLarge(f"more than the {max_bytes:,} bytes allowed (serve's max_bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large  # refused before a byte of it is read
    body = bytearray()
    async for chunk in request.stream():  # a chunked upload declares no length: count it
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return body
