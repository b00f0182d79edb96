"""python manage.py csv_export --kind invoices [--connection NAME] [FILE]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from connectors.models import Connection
from sync.exports import invoices_export


class Command(BaseCommand):
    help = "Write canonical invoices as CSV in the import layout (ISO dates, '.' decimals, ISO currencies)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", nargs="?", help="output file (default: standard output)")
        parser.add_argument("--kind", choices=["invoices"], default="invoices")
        parser.add_argument("--connection", help="only documents bound to this connection")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = None
        if options["connection"]:
            connection = Connection.objects.filter(name=options["connection"]).first()
            if connection is None:
                raise CommandError(f"no connection named {options['connection']!r}", returncode=2)
        if options["file"]:
            path = Path(options["file"])
            with path.open("w", encoding="utf-8", newline="") as out:
                count = invoices_export(out=out, connection=connection)
            self.stderr.write(f"exported {count} invoices to {path}")
        else:
            self.stdout.ending = ""  # the CSV writer ends its own lines
            count = invoices_export(out=self.stdout, connection=connection)  # type: ignore[arg-type]
            self.stderr.write(f"exported {count} invoices")
