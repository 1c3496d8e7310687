"""The demo's import serializer, slowed down per row, so that a test can catch two imports at once."""

import os
import time

from shop_demo.catalog.imports import ProductImportSerializer


class SlowProductImportSerializer(ProductImportSerializer):
    @classmethod
    def save_rows(cls, merchant, rows):
        time.sleep(float(os.environ.get("P2W_TEST_ROW_DELAY", "0")) * len(rows))
        return super().save_rows(merchant, rows)
