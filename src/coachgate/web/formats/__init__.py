"""coachgate's date formats (settings.FORMAT_MODULE_PATH): Django's English formats, except
that a date and time always names its zone (Django admin's lists and read-only fields show
times in the viewer's zone, web.middleware.ViewerTimezoneMiddleware, and now say which)."""
