"""csv_import FILE --connection NAME [--date-order DMY|MDY|YMD] [--decimal-comma] [--currency CODE]"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connectors.csv.parsing import ParseError, normalise_currency
from connectors.csv.reader import KINDS, CsvFileError
from sync.imports import file_import
from sync.selectors import csv_connection_for


class Command(BaseCommand):
    help = "Import invoices, payments or credit notes from a CSV export (format: docs/csv-format.md)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="path to the CSV file")
        parser.add_argument("--connection", required=True, help="CSV connection name (created if missing)")
        parser.add_argument("--kind", choices=KINDS, help="what the file holds (default: from its header)")
        parser.add_argument("--date-order", choices=["DMY", "MDY", "YMD"], type=str.upper)
        parser.add_argument("--decimal-comma", action="store_true", help="amounts use ',' as decimal mark")
        parser.add_argument("--currency", help="ISO 4217 code for rows without one; makes '$' unambiguous")
        parser.add_argument("--encoding", default="utf-8", help="file encoding (default utf-8)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file", returncode=2)
        currency = options["currency"]
        if currency:
            try:
                currency = normalise_currency(currency, field="--currency")
            except ParseError as exc:
                raise CommandError(str(exc), returncode=2) from None
        try:
            connection = csv_connection_for(name=options["connection"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        overrides = {
            "date_order": options["date_order"],
            "decimal_mark": "," if options["decimal_comma"] else None,
            "currency": currency,
        }
        data = path.read_bytes()
        try:
            with self._progress() as progress:
                report = file_import(
                    connection=connection,
                    data=data,
                    filename=path.name,
                    kind=options["kind"],
                    encoding=options["encoding"],
                    options={key: value for key, value in overrides.items() if value},
                    progress=progress,
                )
        except CsvFileError as exc:
            raise CommandError(f"{path}: {exc}; nothing was imported", returncode=2) from None
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"{report.kind}: {report.created} created, {report.updated} updated, "
                f"{report.unchanged} unchanged, {report.rejected_documents} rejected "
                f"(see the exception queue, job #{report.job.pk})"
            )
        self.stdout.write(f"imported {report.imported_rows}, rejected {report.rejected_rows}")

    def _progress(self) -> Any:
        return _Bar() if sys.stdout.isatty() and self.stdout._out is sys.stdout else _NoBar()


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _Bar:
    """A progress bar on a terminal; nothing when output goes to a file or a pipe."""

    def __enter__(self) -> Any:
        self._progress = Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        )
        self._progress.start()
        self._task = self._progress.add_task("import", total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()
