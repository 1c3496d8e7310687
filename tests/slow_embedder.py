"""An open_clip embedder that pauses before each image batch, so a test can kill a worker mid-task."""

import os
import time

from p2w_search.embedders.openclip import OpenCLIPEmbedder


class SlowOpenCLIPEmbedder(OpenCLIPEmbedder):
    def embed_images(self, images, **kwargs):
        time.sleep(float(os.environ.get("P2W_TEST_EMBED_DELAY", "0")))
        return super().embed_images(images, **kwargs)
