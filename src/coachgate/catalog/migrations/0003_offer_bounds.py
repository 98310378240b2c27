"""Offers: session_type defaults to video (offers created without one stored ""), and the
slot step is at least 5 minutes. Rows stored before are repaired first so the new check
constraints hold: "" becomes "video", a step under 5 minutes becomes 5."""

from typing import Any

from django.db import migrations, models


def repair(apps: Any, schema_editor: Any) -> None:
    offer = apps.get_model("catalog", "Offer")
    offer.objects.exclude(session_type__in=["video", "audio", "phone"]).update(
        session_type="video")
    offer.objects.filter(slot_step_minutes__lt=5).update(slot_step_minutes=5)


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0002_availability_version"),
    ]

    operations = [
        migrations.AlterField(
            model_name="offer",
            name="session_type",
            field=models.CharField(choices=[("video", "Video"), ("audio", "Audio"),
                                            ("phone", "Phone")],
                                   default="video", max_length=8),
        ),
        migrations.RunPython(repair, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="offer",
            constraint=models.CheckConstraint(
                condition=models.Q(("session_type__in", ["video", "audio", "phone"])),
                name="offer_session_type_valid"),
        ),
        migrations.AddConstraint(
            model_name="offer",
            constraint=models.CheckConstraint(
                condition=models.Q(("slot_step_minutes__isnull", True),
                                   ("slot_step_minutes__gte", 5), _connector="OR"),
                name="offer_slot_step_min"),
        ),
    ]
