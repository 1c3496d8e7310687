"""An open_clip embedder that pauses before each image batch, so a test can kill a worker mid-task.

A worker's warm-up embeds one picture when it starts; only batches of several images pause,
so the worker is ready as quickly as a real one. Text forward passes pause too when asked
(P2W_TEST_TEXT_DELAY), so a test can make queries arrive while others are encoded, and composed
ones when asked (P2W_TEST_COMPOSE_DELAY), so a test can act while a shopper's "like this, but ..." is encoded.
"""

import os
import time

from p2w_search.embedders.openclip import OpenCLIPEmbedder


class SlowOpenCLIPEmbedder(OpenCLIPEmbedder):
    def embed_images(self, images, **kwargs):
        if len(images) > 1:
            time.sleep(float(os.environ.get("P2W_TEST_EMBED_DELAY", "0")))
        return super().embed_images(images, **kwargs)

    def embed_texts(self, texts, **kwargs):
        time.sleep(float(os.environ.get("P2W_TEST_TEXT_DELAY", "0")))  # each forward pass, alone or batched
        return super().embed_texts(texts, **kwargs)

    def compose(self, *args, **kwargs):
        time.sleep(float(os.environ.get("P2W_TEST_COMPOSE_DELAY", "0")))  # each composed forward pass
        return super().compose(*args, **kwargs)
