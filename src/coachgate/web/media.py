"""Uploaded media, served by coachgate itself: only files it wrote (catalog.photos), at
paths it chose, with their content type and caching headers."""

from __future__ import annotations

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponseBase,
    HttpResponseNotModified,
)
from django.views.decorators.http import require_safe

from coachgate.catalog import services as catalog
from coachgate.kit.errors import NotFound

# With ?v= matching the stored version the URL names one photo for good (a new photo has
# a new version); without it, caches check again after a few minutes.
_FOREVER = "public, max-age=31536000, immutable"
_BRIEFLY = "public, max-age=300"


@require_safe
def coach_photo(request: HttpRequest, coach_id: int, size: int) -> HttpResponseBase:
    viewer = request.user if request.user.is_authenticated else None
    try:
        where, version = catalog.coach_photo_path(viewer, coach_id, size)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    etag = f'"{version}-{size}"'
    cache = _FOREVER if request.GET.get("v") == str(version) else _BRIEFLY
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response: HttpResponseBase = HttpResponseNotModified()
    else:
        try:
            response = FileResponse(where.open("rb"), content_type="image/jpeg")
        except FileNotFoundError as exc:  # removed between the check and the open
            raise Http404("No such photo.") from exc
    response["ETag"] = etag
    response["Cache-Control"] = cache
    response["X-Content-Type-Options"] = "nosniff"
    return response
