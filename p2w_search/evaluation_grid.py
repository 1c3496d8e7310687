"""A picture of example composed queries: reference, text, top results, correct ones marked."""

from PIL import Image, ImageDraw

from p2w_search.models import ProductImage

__all__ = ["draw_examples"]

CELL = 96
TEXT_WIDTH = 170
GOOD, BAD = (34, 160, 70), (200, 40, 40)


def _thumbnail(image_id):
    image = ProductImage.objects.get(pk=image_id)
    with image.file.open("rb") as handle:
        picture = Image.open(handle).convert("RGB")
        picture.thumbnail((CELL - 8, CELL - 8))
    return picture


def draw_examples(queries, rankings, gallery, path, *, top=5, title=""):
    """Draw one row per query: the reference, its text, and the ``top`` results (green: any correct product)."""
    width = CELL + TEXT_WIDTH + top * CELL
    sheet = Image.new("RGB", (width, 24 + CELL * len(queries)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), f"{title}: reference | change | top {top} (green = correct)", fill="black")
    for row, (query, ranking) in enumerate(zip(queries, rankings)):
        y = 24 + row * CELL
        sheet.paste(_thumbnail(gallery.image_of(query.reference)), (4, y + 4))
        for line, chunk in enumerate(_wrap(query.text, 26)[:5]):
            draw.text((CELL + 6, y + 8 + 14 * line), chunk, fill="black")
        for col, name in enumerate(ranking[:top]):
            x = CELL + TEXT_WIDTH + col * CELL
            sheet.paste(_thumbnail(gallery.image_of(name)), (x + 4, y + 4))
            colour = GOOD if name in query.correct else BAD
            draw.rectangle([x + 1, y + 1, x + CELL - 2, y + CELL - 2], outline=colour, width=3)
    sheet.save(path)
    return path


def _wrap(text, width):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])
