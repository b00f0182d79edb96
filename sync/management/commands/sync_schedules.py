from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from sync.schedules import schedules_sync


class Command(BaseCommand):
    help = "Write the schedules declared in code (job reaper, profile schedules) into django-q2."

    def handle(self, *args: Any, **options: Any) -> None:
        result = schedules_sync()
        for action in ("created", "updated", "removed"):
            for name in result[action]:
                self.stdout.write(f"{action}: {name}")
        if not any(result.values()):
            self.stdout.write("schedules are up to date")
