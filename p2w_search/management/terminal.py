"""What the app's commands write to a terminal."""

__all__ = ["shown"]


def shown(text):
    """``text`` with what a terminal would act on written as Python escapes (``\\x1b``, ``\\u202e``).

    Text from elsewhere reaches the terminal: a shop's serializer may echo a cell in its error
    ('"{input}" is not a valid choice.'), a worker's row names its host. An escape sequence there
    would rewrite the terminal's screen or title, a bidi override reorder the line.
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)

