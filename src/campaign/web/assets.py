"""`GET /assets/<fingerprinted name>`: a sent campaign's image, from the database only.

The name holds a hash of the bytes, so an answer never changes: browsers, mail
clients' image proxies and CDNs may keep it for a year.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from campaign.assets import load_asset
from campaign.web import public

CACHE_FOREVER = "public, max-age=31536000, immutable"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    site = public.site_of(request)
    found = await site.db(load_asset, site.engine, name) if _NAME.match(name) else None
    if found is None:
        raise HTTPException(404)
    return Response(
        found.data, media_type=found.content_type, headers={"Cache-Control": CACHE_FOREVER}
    )
