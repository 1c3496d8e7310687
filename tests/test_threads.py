"""Image work in threads (p2w_search/threads.py): the same results as one thread, in order, nothing left running."""

import threading
import time

import numpy as np
import pytest
import torch
from django.conf import settings as django_settings
from PIL import Image

from p2w_search import threads
from p2w_search.embedders.openclip import OpenCLIPEmbedder

TINY = django_settings.P2W_SEARCH["EMBEDDERS"]["default"]
# Eleven different pictures, so that a batch put back in the wrong order changes the result.
IMAGES = [Image.new("RGB", (48, 32), (23 * n % 256, 90 + 13 * n, 255 - 20 * n)) for n in range(11)]


def test_one_image_thread_runs_every_call_in_the_callers_thread(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_THREADS": 1}
    assert threads.run_all(lambda _: threading.current_thread(), range(3)) == [threading.current_thread()] * 3


def test_more_image_threads_run_calls_side_by_side_and_keep_their_order(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_THREADS": 3}
    barrier = threading.Barrier(3, timeout=5)  # passes only if three calls run at once

    def call(item):
        barrier.wait()
        return item * 10

    assert threads.run_all(call, [1, 2, 3]) == [10, 20, 30]


def test_an_error_is_raised_only_once_every_call_has_ended(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_THREADS": 2}
    ended = []

    def call(item):
        if item == "bad":
            raise ValueError("bad file")
        time.sleep(0.3)
        ended.append(item)

    with pytest.raises(ValueError, match="bad file"):
        threads.run_all(call, ["bad", "slow"])
    assert ended == ["slow"]  # what the caller cleans up after an error is complete (importer: the files written)


def test_images_preprocessed_in_threads_give_the_vectors_of_one_thread(settings):
    embedder = OpenCLIPEmbedder("test", {**TINY, "BATCH_SIZE": 4})  # 3 batches: the next one prepared meanwhile
    loaded = embedder.load()
    with torch.inference_mode():  # the reference: every image in one batch, no pipeline
        whole = loaded.model.encode_image(torch.stack([loaded.preprocess(image) for image in IMAGES]))
    expected = torch.nn.functional.normalize(whole, dim=-1).numpy()
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_THREADS": 1}
    alone = embedder.embed_images(IMAGES)
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "IMAGE_THREADS": 3}
    side_by_side = embedder.embed_images(IMAGES)
    np.testing.assert_allclose(alone, expected, atol=1e-5)
    np.testing.assert_array_equal(side_by_side, alone)
