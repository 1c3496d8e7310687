"""Values as a request sends them: whole numbers as the client wrote them, and bytes that are not text.

Read by the API (``api.parameters``), the search service (a product's key) and the shopper's
forms alike, so this module sits below all of them and imports nothing of the app.
"""

import re
from urllib.parse import unquote_to_bytes

__all__ = ["NOT_TEXT", "not_text", "whole_number"]

NOT_TEXT = "This value is not text: its bytes are not UTF-8. Send text as UTF-8 (percent-encoded in a query string)."


def not_text(raw, names=None, *, encoding="utf-8"):
    """The names of ``names`` (None: any) whose value in ``raw``, a query string or form body as sent (``a=b&c=%FF``,
    str or bytes), is not ``encoding``, in the order they come; a name that is not text itself is no name read here.

    Read from the raw string because Django's QueryDict has already replaced such bytes by U+FFFD.
    """
    raw = raw.encode("latin-1", errors="replace") if isinstance(raw, str) else raw  # PEP 3333: bytes as latin-1
    found = []
    for pair in raw.split(b"&"):
        key, _, value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(key.replace(b"+", b" ")).decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if (names is None or name in names) and name not in found:
            try:
                unquote_to_bytes(value.replace(b"+", b" ")).decode(encoding)
            except (UnicodeDecodeError, LookupError):
                found.append(name)
    return found


_DIGITS = re.compile(r"[0-9]+")
_SIGNED_DIGITS = re.compile(r"[-+]?[0-9]+")


def whole_number(value, *, signed=False):
    """``value``, a request's text or a JSON integer, as an int; ValueError unless it is ASCII digits (after a sign
    when ``signed``: ids may be negative, counts and pages not).

    The one reader of the API's whole numbers: Python's int() also reads "1_0" as 10, "٥" (Arabic-Indic
    five) as 5 and " 5" as 5, and DRF's and Django's integer fields "1.0" as 1, each a number the client
    did not write; an answer for it would be silently another one.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0 and not signed:
            raise ValueError(f"{value} has a sign")
        return value
    if not isinstance(value, str) or not (_SIGNED_DIGITS if signed else _DIGITS).fullmatch(value):
        raise ValueError(f"{value!r} is not written in the digits 0-9")
    return int(value)  # ValueError past 4,300 digits (sys.int_info.default_max_str_digits)
