"""Reading a catalog manifest row by row: CSV with a header row, or JSON Lines.

A manifest is streamed, never held whole in memory (a 100,000-row file once took a worker
from 1.1 to 3.7 GB). Whatever cannot be read as a whole is a ManifestError that names the
row where it happened; a row that cannot be read on its own is a Row with a ``problem``,
so the import reports it and goes on.

Rows are numbered as the merchant sees them: a CSV's header is row 1 and each record is
one row (a quoted cell may span lines, as in a spreadsheet); a JSON Lines file is
numbered by line.
"""

import codecs
import csv
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain

__all__ = [
    "ManifestError", "Row", "IMAGE_SEPARATOR", "ERROR_COLUMN", "manifest_format", "read_manifest", "raw_sku",
    "sku_key", "sku_problem", "seen_sku", "escaped_sku", "load_json_line", "WrittenNumber", "spreadsheet_cell",
]

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
IMAGE_SEPARATOR = ";"
# The column that the rejected-rows file adds; ignored on upload, so that file can be corrected and sent again.
ERROR_COLUMN = "error"
# Spreadsheets in many European locales write ';' between cells; tab-separated exports exist too.
_DELIMITERS = (",", ";", "\t")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BREAK = re.compile(r"(\r\n|\r|\n)")
# A cell a spreadsheet would run as a formula, after any apostrophes: =, +, -, @, tab or CR first
# (https://owasp.org/www-community/attacks/CSV_Injection).
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (not one row's fault); the message says where and why."""


@dataclass
class Row:
    """One row: its number, its values by column, and what the merchant wrote (for the rejected-rows file)."""

    number: int
    values: dict = field(default_factory=dict)
    raw: object = None  # CSV: the list of cells; JSON Lines: the line's text
    problem: str | None = None
    problem_field: str | None = None  # the column or key the problem is about, when it is about one


def manifest_format(name):
    """Return ``"csv"`` or ``"jsonl"`` for a manifest's file name, or raise ManifestError."""
    for suffix, kind in FORMATS.items():
        if name.lower().endswith(suffix):
            return kind
    raise ManifestError("it must be a .csv or .jsonl file")


def read_manifest(handle, name, *, max_rows):
    """Return ``(columns, rows)`` of the manifest in the binary file ``handle``.

    ``columns`` is the CSV header's list (None for JSON Lines); ``rows`` yields Row objects
    lazily, reading ``handle`` as it goes, and raises ManifestError where the file stops
    making sense (more than ``max_rows`` rows, a quote that never closes, text that is not
    UTF-8). Header problems (no header, a column given twice or without a name) raise at once.
    """
    kind = manifest_format(name)
    start = handle.read(4)
    handle.seek(0)
    # UTF-16 without a BOM: ASCII text with a NUL byte before or after each character.
    if start.startswith(_UTF16_BOMS) or (len(start) >= 2 and (start[0] == 0) != (start[1] == 0)):
        raise ManifestError("it is UTF-16 text; save it as UTF-8")
    lines = _text_lines(handle)
    if kind == "jsonl":
        return None, _limited(_jsonl_rows(lines), max_rows)
    header = next(lines, "")
    if not header.strip():
        raise ManifestError("it has no header row")
    delimiter = next((d for d in _DELIMITERS if d in header), ",")
    reader = csv.reader(chain([header], lines), delimiter=delimiter, strict=True)
    columns = _columns(_next_record(reader, 1))
    return columns, _limited(_csv_rows(reader, columns), max_rows)


def raw_sku(row, columns):
    """The value a row gives for ``sku`` as written, whether or not the row is valid; None if it gives none.

    A CSV cell, or any JSON value; ``importer.row_sku`` turns it into the SKU that is stored.
    """
    value = row.values.get("sku")
    if value is None and columns is not None and isinstance(row.raw, list) and "sku" in columns:
        index = columns.index("sku")
        value = row.raw[index] if index < len(row.raw) else None
    return value


def sku_key(sku):
    """The form in which two SKUs are compared: Unicode NFC, so that SKUs that read the same are one product.

    ``café`` has two spellings in code points: composed (NFC, as most tools write it) and
    decomposed (NFD: ``e`` and a combining accent, as macOS tools and some spreadsheet exports
    write it). A SKU that is no text (a host shop's integer field, say) is its own key.
    """
    return unicodedata.normalize("NFC", sku) if isinstance(sku, str) else sku


# Characters a SKU may not hold, by Unicode category: format characters (Cf: ZERO WIDTH SPACE, the BOM,
# SOFT HYPHEN, direction marks, WORD JOINER) show nothing, and control characters (Cc: tab, NUL, NEXT LINE)
# and line or paragraph separators (Zl, Zp) show nothing or break the line. A SKU copied from a web page or
# a spreadsheet brings them along unseen: "A1" and "A<U+200B>1" read the same, yet would be two products
# that no one can tell apart (NFC, sku_key, does not join them). They are refused, not removed: which SKU
# the merchant meant is theirs to say.
_UNSEEN = {"Cf": "an invisible character", "Cc": "a control character", "Zl": "a line separator",
           "Zp": "a paragraph separator"}
# Characters a SKU may not hold because they look like others: spaces other than U+0020 (Zs: NO-BREAK SPACE, the
# IDEOGRAPHIC SPACE of CJK input methods, FIGURE, EN and EM SPACE), and the full-width and half-width forms of
# East Asian input methods (decomposition tags <wide> and <narrow>: "ＳＫＵ１" is "SKU1" in NFKC). "A 1" and
# "A<NO-BREAK SPACE>1" look alike, and NFC does not join them; NFKC would, but it also joins what merchants tell
# apart ("x²" and "x2"). Refused with what to write instead, never rewritten. At the ends of a SKU these spaces
# are whitespace, which the fields trim before this check.
_PLAIN_SPACE = " "
_OTHER_SPACE = "a space other than a plain one"
_FORMS = {"<wide>": "a full-width form", "<narrow>": "a half-width form"}
# One character that is several letters and looks like them: "ﬁ" (LATIN SMALL LIGATURE FI) in "proﬁle-1", "ǉ",
# "Ĳ". Letters only: a Roman numeral or a sign (Ⅷ, №) is its own character, kept.
_LIGATURE = "a ligature of several letters"
# Letters of other alphabets that look exactly like a Latin letter in common fonts, and that Latin letter: what a SKU
# typed with a Russian, Ukrainian, Serbian, Kazakh, Greek or Armenian keyboard layout holds where the merchant meant
# Latin ("A-1" with a Cyrillic A), and the Cherokee capitals that are drawn as Latin ones (a SKU copied from a page
# that chose them to look Latin). Only glyphs that are the same, capital and small letters judged apart: Greek capital
# KAPPA is a K, but its small kappa is no k; letters that merely resemble one in some fonts (Cyrillic small ka and ve,
# Greek small alpha, iota and rho, Armenian small ho and vo, Cherokee V as a small i) are left out. The alphabets of
# these letters are those a SKU may not mix with Latin or with each other (_ALPHABETS).
_LATIN_LOOKALIKES = {
    # CYRILLIC CAPITAL LETTER A, VE, IE, KA, EM, EN, O, ER, ES, TE, HA, DZE, BYELORUSSIAN-UKRAINIAN I, JE, STRAIGHT U
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O",
    "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X", "\u0405": "S", "\u0406": "I", "\u0408": "J",
    "\u04ae": "Y",
    # CYRILLIC SMALL LETTER A, IE, O, ER, ES, HA, U, DZE, BYELORUSSIAN-UKRAINIAN I, JE, SHHA
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0445": "x", "\u0443": "y",
    "\u0455": "s", "\u0456": "i", "\u0458": "j", "\u04bb": "h",
    # GREEK CAPITAL LETTER ALPHA, BETA, EPSILON, ZETA, ETA, IOTA, KAPPA, MU, NU, OMICRON, RHO, TAU, UPSILON, CHI
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K",
    "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    # GREEK SMALL LETTER OMICRON, NU
    "\u03bf": "o", "\u03bd": "v",
    # ARMENIAN CAPITAL LETTER OH, SEH; SMALL LETTER OH, SEH
    "\u0555": "O", "\u054d": "U", "\u0585": "o", "\u057d": "u",
    # CHEROKEE LETTER GO, YV, TLI, GV, MI, GU, TSO, LU, TLV, DU, I, DO, LA, NO, TLE, SV
    "\u13aa": "A", "\u13f4": "B", "\u13df": "C", "\u13ac": "E", "\u13bb": "H", "\u13ab": "J", "\u13e6": "K",
    "\u13b7": "M", "\u13e2": "P", "\u13da": "S", "\u13a2": "T", "\u13d9": "V", "\u13b3": "W", "\u13c3": "Z",
    "\u13de": "L", "\u13d2": "R",
}
_LATIN = "LATIN"
# Positions a reason lists after the first, and characters of the SKU it shows.
_POSITIONS_SHOWN, _SKU_SHOWN = 5, 60
# Characters whose kind (_lookalike, _alphabet) is remembered: an import asks it of each character of 100,000 SKUs,
# written with a few dozen characters, where Unicode's tables cost a few lookups each time.
_CHARACTERS_KEPT = 4096


def sku_problem(sku):
    """Why ``sku`` cannot be a SKU, naming the first character at fault and where it is; None when it can.

    The one check of every path that writes a SKU: each import row (``importer``), and a host
    shop's own forms and serializers. A character no one sees is named first; then a space
    other than a plain one, a full-width or half-width form or a ligature, with what to write instead. The
    SKU is shown escaped (``'A\\u200b1'``) so the reader sees what the screen hides; positions
    count characters from 1. Last, letters of two alphabets that share look-alikes (Latin,
    Cyrillic, Greek, Armenian, Cherokee): ``PR<GREEK CAPITAL LETTER OMICRON>-5`` looks like ``PRO-5``. A SKU wholly in
    one alphabet is fine (merchants in those languages use such SKUs); an import compares it with
    the others (``seen_sku``). A SKU that is no text (a host shop's integer field, say) has no
    problem here.
    """
    if _plain(sku):
        return None
    return _unseen_problem(sku) or _lookalike_problem(sku) or _mixed_problem(sku)


def seen_sku(sku):
    """The SKU a reader sees in ``sku``: without the characters no one sees, written plain, in NFC (``sku_key``), with
    Latin letters for those of other alphabets that look the same (``_LATIN_LOOKALIKES``).

    ``A<ZERO WIDTH SPACE>1`` is ``A1``, ``A<NO-BREAK SPACE>1`` is ``A 1``, ``ＡＢ１`` is ``AB1``, and ``А-1`` (a
    Cyrillic A) is ``A-1``. Only compared, never stored. A full sync spares the listed product a rejected row names
    this way, since the merchant plainly named it; an import refuses a new SKU seen as another one is (``importer``).
    A SKU that is no text is its own.
    """
    if _plain(sku):
        return sku
    plain = _written_plain("".join(char for char in sku if unicodedata.category(char) not in _UNSEEN))
    return plain.translate(_AS_LATIN)


def escaped_sku(sku):
    """``sku`` as a reason names it beside a SKU it looks like: cut as ``_shown`` cuts it, and escaped past ASCII
    (``'\\u0410-1'``), since printed the two look the same."""
    return ascii(_shown(str(sku)))


def _plain(sku):
    """Whether ``sku`` holds no character to look at: no text (a host shop's integer key), or printable ASCII (most
    SKUs, passed at once: the upload check looks at 100,000 of them)."""
    return not isinstance(sku, str) or (sku.isascii() and sku.isprintable())


def _unseen_problem(sku):
    """The reason ``sku`` is refused for characters no one sees (``_UNSEEN``); None when it holds none."""
    found = [(position, char) for position, char in enumerate(sku, start=1)
             if unicodedata.category(char) in _UNSEEN]
    if not found:
        return None
    reason = _holding(sku, found, _UNSEEN[unicodedata.category(found[0][1])])
    return reason + ("; remove it" if len(found) == 1 else "; remove them")


def _lookalike_problem(sku):
    """The reason ``sku`` is refused for characters that look like others, and what to write instead; None when it
    holds none. Only spaces: a plain space for each; any full-width or half-width form or ligature: the SKU written
    plain."""
    found = [(position, char) for position, char in enumerate(sku, start=1) if _lookalike(char)]
    if not found:
        return None
    reason = _holding(sku, found, _lookalike(found[0][1]))
    if all(_lookalike(char) == _OTHER_SPACE for _, char in found):
        return reason + ("; write a plain space instead" if len(found) == 1 else "; write plain spaces instead")
    return reason + f"; write {_shown(_written_plain(sku))!r} instead"


@lru_cache(maxsize=_CHARACTERS_KEPT)
def _lookalike(char):
    """What ``char`` is when it looks like other characters (a space, a full-width or half-width form, a ligature of
    letters), or None."""
    category = unicodedata.category(char)
    if category == "Zs" and char != _PLAIN_SPACE:
        return _OTHER_SPACE  # before the forms: the IDEOGRAPHIC SPACE is <wide> too
    tag = unicodedata.decomposition(char).split(" ", 1)[0]
    if tag == "<compat>" and category.startswith("L") and len(unicodedata.normalize("NFKC", char)) > 1:
        return _LIGATURE
    return _FORMS.get(tag)


def _mixed_problem(sku):
    """The reason ``sku`` is refused for mixing alphabets that share look-alikes, and what to write instead; None
    when its letters are of one alphabet (or of none: digits, punctuation and symbols).

    The letters out of place are those outside the alphabet most of its letters are of (Latin on a tie, else the
    first one written): a Greek Omicron typed among Latin letters, or a Latin A among Cyrillic ones. They are
    written in that alphabet when each has a look-alike there; otherwise the merchant chooses the alphabet.
    """
    letters = [(position, char, alphabet) for position, char in enumerate(sku, start=1)
               if (alphabet := _alphabet(char)) in _ALPHABETS]
    counts = Counter(alphabet for _, _, alphabet in letters)
    if len(counts) < 2:
        return None
    main = max(counts, key=lambda alphabet: (counts[alphabet], alphabet == _LATIN))  # a tie: the first written
    found = [(position, char) for position, char, alphabet in letters if alphabet != main]
    out = _alphabet(found[0][1]).title()
    reason = _holding(sku, found, f"{'an' if out[0] in 'AEIOU' else 'a'} {out} letter among {main.title()} ones")
    out_of_place = dict(found)
    written = [_lookalike_in(char, main) if position in out_of_place else char
               for position, char in enumerate(sku, start=1)]
    if None in written:
        named = [alphabet.title() for alphabet in sorted(counts, key=lambda alphabet: alphabet != main)]
        return reason + f"; write all its letters in one alphabet, {', '.join(named[:-1])} or {named[-1]}"
    return reason + f"; write {_shown(''.join(written))!r} in {main.title()} letters instead"


@lru_cache(maxsize=_CHARACTERS_KEPT)
def _alphabet(char):
    """The alphabet of a letter, the first word of its Unicode name (LATIN, CYRILLIC, GREEK, ...); None for a character
    that is no letter (digits, punctuation and symbols are of no alphabet) or has no name."""
    if not unicodedata.category(char).startswith("L"):
        return None
    return unicodedata.name(char, "").split(" ", 1)[0] or None


def _lookalike_in(char, alphabet):
    """The letter of ``alphabet`` that looks like the letter ``char``; None when there is none."""
    latin = char if _alphabet(char) == _LATIN else _LATIN_LOOKALIKES.get(char)
    return latin if latin is None or alphabet == _LATIN else _IN_ALPHABET[alphabet].get(latin)


def _by_alphabet(lookalikes):
    """``{alphabet: {Latin letter: its look-alike in that alphabet}}`` of a table of look-alikes (the first one of an
    alphabet for each Latin letter): what a Latin letter typed among Cyrillic ones is written as instead."""
    table = {}
    for char, latin in lookalikes.items():
        table.setdefault(_alphabet(char), {}).setdefault(latin, char)
    return table


_IN_ALPHABET = _by_alphabet(_LATIN_LOOKALIKES)
_AS_LATIN = str.maketrans(_LATIN_LOOKALIKES)  # seen_sku's table: each look-alike as its Latin letter
# The alphabets a SKU may not mix: Latin, and those that hold look-alikes of its letters (Cyrillic, Greek, Armenian,
# Cherokee).
_ALPHABETS = {_LATIN, *_IN_ALPHABET}


def _written_plain(sku):
    """``sku`` with plain spaces, and its full-width and half-width forms and ligatures as NFKC writes them
    (``ＳＫＵ１``: ``SKU1``; ``ﬁ``: ``fi``).

    Only those characters: NFKC of the whole SKU would also change others it keeps (``x²``).
    NFC joins a half-width letter and its half-width voiced sound mark as NFKC does (``ｶﾞ``: ``ガ``).
    """
    return unicodedata.normalize("NFC", "".join(_written_plain_char(char, _lookalike(char)) for char in sku))


def _written_plain_char(char, kind):
    """``char`` as ``_written_plain`` writes it, ``kind`` being its ``_lookalike``."""
    if kind == _OTHER_SPACE:
        return _PLAIN_SPACE
    return unicodedata.normalize("NFKC", char) if kind else char


def _holding(sku, found, kind):
    """``sku 'A\\u200b1' holds KIND, U+200B ZERO WIDTH SPACE, at position 2``, and the positions of the others found."""
    position, char = found[0]
    name = unicodedata.name(char, "")  # control characters have no name, only a code point
    reason = (f"sku {_shown(sku)!r} holds {kind}, U+{ord(char):04X}{' ' + name if name else ''}, "
              f"at position {position}")
    others = [str(p) for p, _ in found[1:]]
    if not others:
        return reason
    listed = ", ".join(others[:_POSITIONS_SHOWN]) + (", …" if len(others) > _POSITIONS_SHOWN else "")
    return reason + f", and {len(others)} more at position{'s' if len(others) > 1 else ''} {listed}"


def _shown(sku):
    """``sku`` as a reason shows it: cut after ``_SKU_SHOWN`` characters."""
    return sku if len(sku) <= _SKU_SHOWN else sku[:_SKU_SHOWN] + "…"


def _columns(header):
    columns = [cell.strip() for cell in header]
    while columns and not columns[-1]:  # trailing empty cells of a spreadsheet export
        columns.pop()
    seen = {}
    for position, name in enumerate(columns, start=1):
        if not name:
            raise ManifestError(f"column {position} of the header has no name")
        if name in seen:
            raise ManifestError(f"the column {name!r} is given twice in the header (columns {seen[name]} and "
                                f"{position}); give each column once")
        seen[name] = position
    if not columns:
        raise ManifestError("it has no header row")
    return columns


def _csv_rows(reader, columns):
    number = 1
    while True:
        number += 1
        cells = _next_record(reader, number)
        if cells is None:
            return
        if not any(cell.strip() for cell in cells):
            continue  # a blank line or a row of empty cells: nothing to import
        cells = [_sent_cell(cell) for cell in cells]
        extra = [cell for cell in cells[len(columns):] if cell.strip()]
        if extra:
            yield Row(number, raw=cells, problem=f"the row has {len(cells)} cells, more than the {len(columns)} "
                                                 "columns of the header")
            continue
        values = {}
        for name, cell in zip(columns, cells):
            cell = cell.strip()
            if name == ERROR_COLUMN or (not cell and name not in ("sku", "images")):
                continue
            values[name] = _split_images(cell) if name == "images" else cell
        yield Row(number, values=values, raw=cells)


def _jsonl_rows(lines):
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = load_json_line(line)
        except DuplicateKey as exc:
            # The values as json.loads reads them (the last of each key): raw_sku finds the SKU a full sync spares.
            try:
                value = json.loads(line, **_NUMBERS_AS_WRITTEN)
            except (ValueError, RecursionError):  # an integer too long further on, say: no SKU to spare
                value = None
            yield Row(number, values=value if isinstance(value, dict) else {}, raw=line,
                      problem=f"the key {exc.key!r} is given twice; give each key once", problem_field=exc.key)
            continue
        except RecursionError:
            yield Row(number, raw=line, problem="not valid JSON: nested too deeply")
            continue
        except ValueError as exc:  # JSONDecodeError, and integers longer than Python reads
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            yield Row(number, raw=line, problem=f"not valid JSON: {reason}")
            continue
        if not isinstance(value, dict):
            yield Row(number, raw=line, problem="a line must be a JSON object")
            continue
        value.pop(ERROR_COLUMN, None)
        if isinstance(value.get("images"), str):
            value["images"] = _split_images(value["images"])
        yield Row(number, values=value, raw=line)


class DuplicateKey(ValueError):
    """A JSON object names one key twice: which value is meant is unknown (json.loads would keep the last)."""

    def __init__(self, key):
        super().__init__(f"the key {key!r} is given twice")
        self.key = key


def unique_keys(pairs):
    """``json``'s ``object_pairs_hook`` that raises DuplicateKey for a key given twice in one object."""
    value = {}
    for key, item in pairs:
        if key in value:
            raise DuplicateKey(key)
        value[key] = item
    return value


class WrittenNumber(float):
    """A JSON number with a fraction or an exponent (or ``NaN``, ``Infinity``): a float whose ``str`` is its text.

    ``json.loads`` reads ``1.10`` as 1.1 and ``1.00000000000000001`` as 1.0, so a SKU written as a
    number was stored as another SKU (which a full sync then told apart from the listed ``1.10``),
    and a price the same digits in quotes would refuse (too many digits) was stored rounded.
    DRF's CharField and DecimalField read a number through ``str()``: each reads what the merchant
    wrote, as the product API's parser does (``parse_float=Decimal``; a Decimal is no value a
    shop's CharField takes). Code that computes with it gets the float.
    """

    __slots__ = ("text",)

    def __new__(cls, text):
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __str__(self):
        return self.text

    def __reduce__(self):
        return type(self), (self.text,)


# json.loads reading each number with a fraction or an exponent as it is written (WrittenNumber).
_NUMBERS_AS_WRITTEN = {"parse_float": WrittenNumber, "parse_constant": WrittenNumber}


def load_json_line(line):
    """``json.loads``, but an object that gives one key twice raises DuplicateKey instead of keeping the last, and a
    number with a fraction or an exponent is a WrittenNumber (its text as written)."""
    return json.loads(line, object_pairs_hook=unique_keys, **_NUMBERS_AS_WRITTEN)


def _text_lines(handle, *, chunk_size=1 << 16):
    """Yield the lines of a UTF-8 file, each with its line break (CR, LF or CR LF, as csv expects).

    Decoded a chunk at a time; bytes that are not UTF-8 raise ManifestError with the line
    a text editor shows them on.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    line_number, pending = 1, ""
    while True:
        chunk = handle.read(chunk_size)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            valid = exc.object[:exc.start].decode("utf-8-sig", errors="replace")
            line = line_number + len(_BREAK.findall(pending + valid))
            raise ManifestError(f"line {line}: it is not UTF-8 text") from None
        if chunk and not _BREAK.search(text):
            pending += text  # a long line: split it once its break arrives, not at every chunk
            continue
        pending += text
        parts = _BREAK.split(pending)  # [text, break, text, break, ..., rest]
        rest = parts.pop()
        if rest == "" and parts and parts[-1] == "\r" and chunk:
            parts.pop()  # a CR at the end of a chunk may be the first half of CR LF
            rest = parts.pop() + "\r"
        for index in range(0, len(parts), 2):
            yield parts[index] + parts[index + 1]
            line_number += 1
        pending = rest
        if not chunk:
            if pending:
                yield pending
            return


def spreadsheet_cell(text):
    """``text`` as a CSV cell that a spreadsheet shows as text: an apostrophe before a cell that would be a formula.

    The rejected-rows file goes to spreadsheets (the merchant's, and staff's from the admin): a
    cell ``=HYPERLINK(...)`` sent in a manifest must not run there. A CSV manifest's cell is read
    without that apostrophe again, so the file, corrected and uploaded, imports what was sent.
    """
    return f"'{text}" if _FORMULA.match(text) else text


def _sent_cell(cell):
    """The text a CSV cell stands for: without one apostrophe before what would be a formula, the one
    ``spreadsheet_cell`` adds (``'=x`` is ``=x``, ``''=x`` is ``'=x``); any other cell as it is."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell, 1) else cell


def _split_images(cell):
    return [name.strip() for name in cell.split(IMAGE_SEPARATOR) if name.strip()]


def _next_record(reader, number):
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise ManifestError(f"row {number}: {_csv_reason(str(exc))}") from None


def _csv_reason(message):
    if "unexpected end of data" in message:
        return 'a quoted cell that starts on this row is never closed (a stray " ?); no row after it can be read'
    if "field larger than field limit" in message:
        return f"a cell is longer than {csv.field_size_limit()} characters"
    if "expected after" in message:
        return 'a quoted cell goes on after its closing quote; write a quote inside a quoted cell as ""'
    return message


def _limited(rows, max_rows):
    """Yield ``rows``; raise ManifestError past ``max_rows``."""
    for count, row in enumerate(rows, start=1):
        if count > max_rows:
            raise ManifestError(f"it has more than {max_rows} rows; split it into several uploads")
        yield row
