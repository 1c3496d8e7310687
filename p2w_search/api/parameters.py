"""A view's query-string parameters: the 400s for one it does not read and for one given twice.

A parameter a view does not read (``?ordering=-price``, a misspelt ``?catgory=mug``) would
otherwise be ignored, and the answer would look as if it had been applied; of a parameter given
twice (``?page=1&page=2``) Django's QueryDict silently keeps the last. The app's views refuse
both, naming the parameter; a shop's own DRF views can do the same::

    query = request.query_params
    problems = {**unknown_parameters(query, known), **repeated_parameters(query, known)}
    if problems:
        raise ValidationError(problems)
"""

__all__ = ["unknown_parameters", "repeated_parameters"]


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
