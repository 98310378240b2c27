"""Keep CoachProfile.availability_version in step with every availability change, including
edits made in the Django admin, so cached availability is never served stale."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from coachgate.catalog.models import CoachProfile, new_availability_version

from .models import AvailabilityOverride, WeeklyAvailability


def bump_availability_version(coach_id: int) -> None:
    CoachProfile.objects.filter(pk=coach_id).update(
        availability_version=new_availability_version())


@receiver([post_save, post_delete], sender=WeeklyAvailability)
@receiver([post_save, post_delete], sender=AvailabilityOverride)
def _availability_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    bump_availability_version(instance.coach_id)
