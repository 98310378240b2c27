"""Routes of video meetings: the providers' webhooks."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from . import webhooks

router = Router(tags=["meetings"])


@router.post("/meetings/webhooks/zoom", auth=None, response=dict[str, Any],
             summary="Zoom events (verified by x-zm-signature, stored once, processed later)")
def zoom_webhook(request: HttpRequest) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    return webhooks.receive_zoom(request.body, headers)
