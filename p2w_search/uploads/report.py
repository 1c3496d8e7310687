"""An import's report: the first errors on the job, every rejected row in the rejected-rows file.

The file is the rows exactly as sent with an ``error`` column (CSV) or key (JSON Lines), ready
to fix and upload again; a CSV cell a spreadsheet would run as a formula is written with an
apostrophe in front (``manifest.spreadsheet_cell``). A CSV manifest that holds such a cell is
downloaded written the same way (``spreadsheet_safe``).
"""

import codecs
import csv
import io
import json
import logging
import sys
import tempfile

from django.core.files import File

from p2w_search.conf import app_settings
from p2w_search.uploads.manifest import (
    ERROR_COLUMN,
    ManifestError,
    WrittenNumber,
    load_json_line,
    manifest_format,
    read_manifest,
    spreadsheet_cell,
)

__all__ = ["JobReport", "spreadsheet_safe"]

logger = logging.getLogger(__name__)


class JobReport:
    """A job's errors: the first few in the job, all of them in the rejected-rows file."""

    def __init__(self, job):
        self.job = job
        self.shown, self.errors_total, self.rows_rejected = [], 0, 0
        self.file = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024, mode="w+b")
        # A JSON Lines row may hold a lone surrogate ("\ud800" is valid JSON, and the row is rejected for it):
        # UTF-8 cannot encode one, so it is written back as that same escape, which reads as it was sent.
        self.text = io.TextIOWrapper(self.file, encoding="utf-8", errors="backslashreplace", newline="")
        self.columns, self.kind, self.writer, self.kept = None, None, None, None
        self.stored = None  # the name of the rejected-rows file written

    def start(self, columns, name):
        # The cells kept: all but a previous error column's, wherever the merchant put it.
        self.kept = [i for i, c in enumerate(columns) if c != ERROR_COLUMN] if columns is not None else None
        self.columns = [columns[i] for i in self.kept] if columns is not None else None
        self.kind = "csv" if columns is not None else "jsonl"
        if self.kind == "csv":
            self.writer = csv.writer(self.text)
            self.writer.writerow([*self.columns, ERROR_COLUMN])

    def reject(self, row, problems):
        self.rows_rejected += 1
        self.errors_total += len(problems)
        limit = int(app_settings.IMPORT_ERRORS_SHOWN)
        for problem in problems:
            if len(self.shown) < limit:
                self.shown.append({"row": row.number, **problem})
        error = "; ".join(f"{p['field']}: {p['reason']}" if p["field"] else p["reason"] for p in problems)
        if self.kind == "csv":
            cells = list(row.raw) if isinstance(row.raw, list) else []
            self.writer.writerow([spreadsheet_cell(cell) for cell in
                                  (*(cells[i] if i < len(cells) else "" for i in self.kept), error)])
        else:
            self.text.write(_json_text(_jsonl_rejected(row.raw, error)) + "\n")

    def store(self, job):
        """Put the first errors, their count and the rejected-rows file on ``job`` (not saved)."""
        job.errors, job.errors_total = self.shown, self.errors_total
        if self.rows_rejected:
            self.text.flush()
            self.file.seek(0)
            extension = ".csv" if self.kind == "csv" else ".jsonl"
            job.rejected_rows.save(f"rejected-rows{extension}", File(self.file), save=False)
            self.stored = job.rejected_rows.name

    def discard(self, job):
        """Delete the rejected-rows file ``store`` wrote for a run that did not end (no saved job refers to it)."""
        if self.stored:
            try:
                job.rejected_rows.storage.delete(self.stored)
            except Exception as exc:  # any storage's error: the orphan sweep deletes it later
                logger.warning("could not delete the rejected rows file %s: %s", self.stored, exc)
            job.rejected_rows, self.stored = "", None

    def close(self):
        self.text.detach()
        self.file.close()


def spreadsheet_safe(handle, name):
    """The manifest in the binary file ``handle`` to serve, as a spreadsheet may open it: ``handle`` itself, rewound,
    when no cell would run as a formula there; else a temporary file of its header and rows written again as the
    rejected-rows file writes them (``spreadsheet_cell``), which the import reads back cell for cell as it read them,
    and ``handle`` is closed. A read that fails closes ``handle`` and raises.

    A manifest goes to spreadsheets too: staff open a merchant's from the admin, and a cell ``=HYPERLINK(...)`` would
    run there. JSON Lines, and a file that no longer reads as it did when it was uploaded, are served as sent.
    """
    try:
        copy = _spreadsheet_copy(handle, name)
    except BaseException:
        handle.close()
        raise
    if copy is None:
        handle.seek(0)
        return handle
    handle.close()
    return copy


def _spreadsheet_copy(handle, name):
    """``spreadsheet_safe``'s copy of the CSV manifest in ``handle``, or None when it is served as sent."""
    try:
        if manifest_format(name) != "csv" or not _runs_a_formula(handle, name):
            return None
        copy = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024, mode="w+b")
        handle.seek(0)
        if handle.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            copy.write(codecs.BOM_UTF8)  # as sent: the spreadsheet's sign that the text is UTF-8
        text = io.TextIOWrapper(copy, encoding="utf-8", newline="")
        columns, rows = _read_again(handle, name)
        writer = csv.writer(text)
        writer.writerow([spreadsheet_cell(cell) for cell in columns])
        written = 1
        for row in rows:
            writer.writerows([] for _ in range(row.number - written - 1))  # its blank rows: each row keeps its number
            writer.writerow([spreadsheet_cell(cell) for cell in row.raw])
            written = row.number
        text.flush()
        text.detach()
    except ManifestError as exc:
        logger.warning("the manifest %s no longer reads as it did: served as sent (%s)", name, exc)
        return None
    copy.seek(0)
    return copy


def _runs_a_formula(handle, name):
    columns, rows = _read_again(handle, name)
    return any(spreadsheet_cell(cell) != cell for cell in columns) or any(
        spreadsheet_cell(cell) != cell for row in rows for cell in row.raw)


def _read_again(handle, name):
    """``read_manifest`` of a stored manifest from its start, without a row limit: it was checked when it came."""
    handle.seek(0)
    return read_manifest(handle, name, max_rows=sys.maxsize)


def _jsonl_rejected(line, error):
    try:
        value = load_json_line(line)  # a key given twice: the line as sent, not one of its values
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        value.pop(ERROR_COLUMN, None)
        return {**value, ERROR_COLUMN: error}
    return {"line": line.rstrip("\r\n"), ERROR_COLUMN: error}


def _json_text(value):
    """``value`` as ``json.dumps(value, ensure_ascii=False)`` writes it, but each WrittenNumber as it was sent.

    json.dumps writes the float: ``1.00000000000000001`` came back as ``1.0``, and the file, fixed
    and sent again, imported a price the merchant never wrote. A value nested deeper than Python
    recurses here is written by json.dumps, as before.
    """
    try:
        return _written(value)
    except RecursionError:
        return json.dumps(value, ensure_ascii=False)


def _written(value):
    if isinstance(value, WrittenNumber):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key, ensure_ascii=False)}: {_written(item)}"
                               for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_written(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)
