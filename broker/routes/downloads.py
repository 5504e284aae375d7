"""The single-file host builds the broker was given (``DESKHAND_HOST_DOWNLOADS``), for anyone to download."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import PublicAccess
from broker.deps import Source, State
from broker.host_downloads import PLATFORM_PATTERN
from broker.refusals import RateLimited
from protocol.api import API_PREFIX, HostDownloadOut, HostDownloadsOut

router = APIRouter(tags=["downloads"], dependencies=[PublicAccess])

Platform = Annotated[str, Path(
    pattern=PLATFORM_PATTERN, max_length=33, description="The build's platform, as GET /downloads lists it: linux-x86_64",
)]


@router.get(
    "/downloads", response_model=HostDownloadsOut,
    summary="The host builds this broker offers, each with its size and SHA-256 (public; an empty list when none)",
)
async def list_downloads(state: State) -> HostDownloadsOut:
    builds = await run_in_threadpool(state.host_downloads.builds)  # no database: needs no slot
    return HostDownloadsOut(downloads=[
        HostDownloadOut(platform=b.platform, file_name=b.file_name, size=b.size, sha256=b.sha256,
                        url=f"{API_PREFIX}/downloads/{b.platform}")
        for b in builds
    ])


@router.get(
    "/downloads/{platform}", response_class=FileResponse,
    summary="One host build's file (public); 404 names the platforms there are",
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file, as an attachment"},
               429: {"description": "Too many whole downloads from this address this hour (Retry-After)"},
               404: {"description": "No build for this platform; the message and detail.platforms say which there are"}},
)
async def download(platform: Platform, request: Request, state: State, source: Source) -> FileResponse:
    build = await run_in_threadpool(state.host_downloads.build, platform)
    # 70 MB a request, for anyone: counted per address. The rest of a download (a resumed one) was counted when it began.
    if not continues_a_download(request.headers.get("range")):
        wait = await state.download_rates.take(source or "unknown", 1)
        if wait is not None:
            per_hour = state.settings.host_downloads_per_hour
            raise RateLimited("rate_limited", f"too many downloads from this address (at most {per_hour} an hour): "
                              f"try again in {wait} s", retry_after=wait)
    digest = base64.b64encode(bytes.fromhex(build.sha256)).decode()
    return FileResponse(
        build.path, media_type="application/octet-stream", filename=build.file_name,
        headers={"Repr-Digest": f"sha-256=:{digest}:", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def continues_a_download(range_header: str | None) -> bool:
    """Whether a ``Range`` asks for the rest of a file from past its first byte (``bytes=1048576-``):
    the continuation of a download counted when it began, so not counted again."""
    if not range_header or not range_header.startswith("bytes="):
        return False
    first = range_header.removeprefix("bytes=").split(",")[0].strip().split("-")[0].strip()
    return first.isdigit() and int(first) > 0
