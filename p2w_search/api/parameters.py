"""A view's query-string parameters: the 400s for one it does not read, one given twice, one that is not text
(``not_text``) and whole numbers read as the client wrote them (``whole_number``: both in request_values.py,
which the search service and the shopper's forms read too).

A parameter a view does not read (``?ordering=-price``, a misspelt ``?catgory=mug``) would
otherwise be ignored, and the answer would look as if it had been applied; of a parameter given
twice (``?page=1&page=2``) Django's QueryDict silently keeps the last, and bytes that are not
UTF-8 (``?q=%FF``) it reads as U+FFFD, which would be searched as if typed. The app's views refuse
all three, naming the parameter; a shop's own DRF views can do the same::

    query = request.query_params
    problems = {**unknown_parameters(query, known), **repeated_parameters(query, known)}
    if problems:
        raise ValidationError(problems)
"""

from p2w_search.request_values import NOT_TEXT, not_text, whole_number

__all__ = ["unknown_parameters", "repeated_parameters", "not_text", "NOT_TEXT", "whole_number"]


def unknown_parameters(given, known):
    """``{name: [reason]}`` for each name of ``given`` (a QueryDict or a dict) that is not in ``known``; the reason
    lists the known ones."""
    listed = ", ".join(sorted(known))
    return {name: [f"Unknown parameter. The parameters are: {listed}."] for name in sorted(set(given) - set(known))}


def repeated_parameters(query, names):
    """``{name: [reason]}`` for each of ``names`` that ``query`` (a QueryDict) holds more than once."""
    counts = {name: len(query.getlist(name)) for name in names}
    return {name: [f"Give {name} once; it was given {count} times."] for name, count in sorted(counts.items())
            if count > 1}
