"""DRF's parsers, answering a body they cannot read with a 400 that says why (ParseError), never a 500 or a bare 400.

DRF's JSONParser lets ``RecursionError`` through (``"[" * 100000`` is a 500), and Django's
limits on a form (``DATA_UPLOAD_MAX_NUMBER_FILES``, ``DATA_UPLOAD_MAX_NUMBER_FIELDS``,
``DATA_UPLOAD_MAX_MEMORY_SIZE``) are SuspiciousOperations that Django answers with a 400 of
no body. A form's or multipart field's value whose bytes are not text is a ParseError naming the
field, not a search for the U+FFFD that Django reads them as. The app's views use these;
``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]`` can name them for a shop's other views.
"""

import codecs
import decimal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler
from django.http import QueryDict
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from p2w_search.api.parameters import not_text
from p2w_search.uploads.manifest import DuplicateKey, unique_keys

__all__ = ["JSONParser", "FormParser", "MultiPartParser", "limit_exceeded"]


def limit_exceeded(exc, *, files_hint=""):
    """The ParseError for one of Django's request limits (``exc``), naming the limit and its setting; else None.

    ``files_hint``: what to do instead, said after a refusal for too many files.
    """
    if isinstance(exc, TooManyFilesSent):
        what, setting = "files", "DATA_UPLOAD_MAX_NUMBER_FILES"
    elif isinstance(exc, TooManyFieldsSent):
        what, setting = "fields (form fields and query parameters)", "DATA_UPLOAD_MAX_NUMBER_FIELDS"
    elif isinstance(exc, RequestDataTooBig):
        return ParseError(f"The request's form fields are larger than this site takes: at most "
                          f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (Django's DATA_UPLOAD_MAX_MEMORY_SIZE).")
    else:
        return None
    return ParseError(f"Too many {what} in one request: this site takes at most {getattr(settings, setting)} "
                      f"(Django's {setting}).{files_hint if what == 'files' else ''}")


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser; JSON nested deeper than Python's parser goes is a ParseError too, and so is a
    lone surrogate (``"\\udc00"`` is valid JSON but not text: an answer that repeats it, "'...' is not a
    valid choice", could not be written as UTF-8), and an object that gives one key twice (which
    value is meant is unknown: Python's parser keeps the last, as a catalog import refuses to).
    A number with a fraction is read as the Decimal it is written as, not a float: a price of
    1.00000000000000001 was rounded to 1.00 and stored, where the same as a string is refused."""

    def parse(self, stream, media_type=None, parser_context=None):
        text = codecs.getreader(parsers.get_encoding(parser_context or {}))(stream)
        try:
            data = json.load(text, parse_constant=json.strict_constant if self.strict else None,
                             object_pairs_hook=unique_keys, parse_float=decimal.Decimal)
        except DuplicateKey as exc:
            raise ParseError(f"JSON parse error - {exc}; give each key once.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - the JSON is nested too deeply.") from None
        found = _lone_surrogate(data)
        if found:
            where, code = found
            raise ParseError(f"JSON parse error - {where} holds a lone surrogate (U+{code:04X}), which is not text.")
        return data


def _lone_surrogate(data):
    """``(where, code point)`` of the first string of ``data`` (keys too) that UTF-8 cannot encode, or None."""
    stack = [(data, "the body")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return where, ord(value[exc.start])
        elif isinstance(value, dict):
            stack.extend((key, "a key") for key in value)
            stack.extend((item, f"the value of {key!r}" if where == "the body" else where)
                         for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, where) for item in value)
    return None


class FormParser(parsers.FormParser):
    """DRF's FormParser; more fields than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` is a ParseError that says so, and so is
    a value whose bytes are not the form's encoding (``text=in+%FFred`` was read, and searched, as "in �red")."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        body = stream.read()
        garbled = not_text(body, encoding=encoding)
        if garbled:
            raise ParseError(f"Form parse error - the value of {garbled[0]!r} is not text: its bytes are not "
                             f"{_named(encoding)}.")
        try:
            return QueryDict(body, encoding=encoding)
        except TooManyFieldsSent as exc:
            raise limit_exceeded(exc) from None


def _named(encoding):
    return "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding


class MultiPartParser(parsers.MultiPartParser):
    """DRF's MultiPartParser; a request over one of Django's limits is a ParseError that names it.

    ``max_files``, when set, is a view's own limit on the files of one request, below
    Django's (a search takes one photo). The file past it is refused before it is stored.
    ``files_hint`` is said after a refusal for more files than Django's limit.
    """

    max_files = None
    files_hint = ""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = {**request.META, "CONTENT_TYPE": media_type}
        handlers = list(request.upload_handlers)
        if self.max_files is not None:
            handlers.insert(0, _FileCounter(self.max_files))
        try:
            data, files = DjangoMultiPartParser(meta, stream, handlers, parsers.get_encoding(parser_context)).parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from None
        except (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
            raise limit_exceeded(exc, files_hint=self.files_hint) from None
        except _ViewFileLimit as exc:
            raise ParseError(f"Too many files in one request: this endpoint takes at most {exc.limit}.") from None
        # Django reads a field's bytes that are not text as U+FFFD, and keeps no raw bytes to check instead.
        garbled = [name for name, values in data.lists() if any(REPLACED in value for value in values)]
        if garbled:
            raise ParseError(f"Multipart form parse error - the value of {garbled[0]!r} is not text: its bytes are not "
                             f"UTF-8 (or it holds U+FFFD, which stands for such bytes).")
        return parsers.DataAndFiles(data, files)


REPLACED = "\ufffd"  # U+FFFD REPLACEMENT CHARACTER: what a decoder puts for bytes that are not text


class _ViewFileLimit(Exception):
    def __init__(self, limit):
        super().__init__(limit)
        self.limit = limit


class _FileCounter(FileUploadHandler):
    """An upload handler that only counts files, first in line: past ``limit`` it stops the parsing."""

    chunk_size = None  # the other handlers' chunks

    def __init__(self, limit):
        super().__init__()
        self.limit, self.count = limit, 0

    def new_file(self, *args, **kwargs):
        self.count += 1
        if self.count > self.limit:
            raise _ViewFileLimit(self.limit)

    def receive_data_chunk(self, raw_data, start):
        return raw_data  # to the next handler

    def file_complete(self, file_size):
        return None  # the next handler makes the file
