"""CSV exports as a platform: files in, files out (see docs/csv-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.base import Connector
from connectors.csv import layouts
from connectors.csv.layouts import CsvOptions
from connectors.csv.reader import read_table


class CsvConnector(Connector):
    platform = "csv"
    label = "CSV file"
    capabilities = {
        "customer": frozenset({"import_file"}),
        "invoice": frozenset({"import_file", "export_file"}),
        "payment": frozenset({"import_file"}),
        "credit_note": frozenset({"import_file"}),
    }

    def check_credentials(self) -> None:
        """Files need no credentials."""

    def parse_file(
        self, data: bytes, *, kind: str | None = None, encoding: str = "utf-8", **overrides: Any
    ) -> ParsedFile:
        """Read a whole file. Raises CsvFileError when it cannot be read at all; row problems are items."""
        table = read_table(data, kind=kind, encoding=encoding)
        options = _options(self.connection, overrides)
        items = list(layouts.records(table, options))
        return ParsedFile(kind=table.kind, row_count=len(table.rows), options=options, items=items)


def _options(connection: Any, overrides: dict[str, Any]) -> CsvOptions:
    """A file's options: what the command says, else what the connection declares."""
    stored = connection.options or {}
    currency = overrides.get("currency") or stored.get("currency")
    return CsvOptions(
        date_order=overrides.get("date_order") or stored.get("date_order"),
        decimal_mark=overrides.get("decimal_mark") or stored.get("decimal_mark"),
        currency=currency.upper() if currency else None,
    )


@dataclass
class ParsedFile:
    kind: str
    row_count: int
    options: CsvOptions
    items: list[Any] = field(default_factory=list)  # records and RecordProblems, in file order
