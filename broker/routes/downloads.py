"""The single-file host builds the broker was given (``DESKHAND_HOST_DOWNLOADS``), for anyone to download."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from broker.accounts.access import PublicAccess
from broker.deps import State
from broker.host_downloads import PLATFORM_PATTERN
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
               404: {"description": "No build for this platform; the message and detail.platforms say which there are"}},
)
async def download(platform: Platform, state: State) -> FileResponse:
    build = await run_in_threadpool(state.host_downloads.build, platform)
    digest = base64.b64encode(bytes.fromhex(build.sha256)).decode()
    return FileResponse(
        build.path, media_type="application/octet-stream", filename=build.file_name,
        headers={"Repr-Digest": f"sha-256=:{digest}:", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )
