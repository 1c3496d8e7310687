"""What a posted form's data says of itself, whoever's form it is: the shopper's pages and the merchant's.

A field a form takes once, sent twice, is read by Django as its last value (``QueryDict.get``):
which of the two the sender meant is unknown, so the pages refuse it, naming the field, and act on neither.
"""

__all__ = ["given_more_than_once"]


def given_more_than_once(data, names):
    """``{name: reason}`` for each of ``names`` that the form ``data`` (a QueryDict or MultiValueDict) holds more than
    once, in the order of ``names``."""
    return {name: f"The form sent “{name}” {len(data.getlist(name))} times; send it once."
            for name in names if len(data.getlist(name)) > 1}
