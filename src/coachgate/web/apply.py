"""Become a coach: a student applies from the web (to be written)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
