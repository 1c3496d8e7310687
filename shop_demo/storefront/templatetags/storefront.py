from decimal import Decimal

from django import template
from django.utils.formats import number_format

register = template.Library()

_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


@register.filter
def money(product):
    """Format a product's price with its currency, e.g. ``€19.99``."""
    amount = number_format(Decimal(product.price), decimal_pos=2, force_grouping=True)
    symbol = _SYMBOLS.get(product.currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {product.currency}"
