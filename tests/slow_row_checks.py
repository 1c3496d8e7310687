"""The demo's import serializer, each valid row's check slowed down, so that a page can watch the rows go by."""

import os
import time

from shop_demo.catalog.imports import ProductImportSerializer


class SlowlyCheckedProductImportSerializer(ProductImportSerializer):
    def validate(self, attrs):
        time.sleep(float(os.environ.get("P2W_TEST_ROW_CHECK_DELAY", "0")))
        return super().validate(attrs)
