"""The open_clip backend loads the same weights from every source a user may have."""

import json
import shutil

import numpy as np
import pytest
import torch
from django.conf import settings
from PIL import Image
from safetensors.torch import save_file

from p2w_search.conf import P2WImproperlyConfigured
from p2w_search.embedders import InvalidEmbedderError, get_embedder
from p2w_search.embedders.openclip import OpenCLIPEmbedder, file_sha256

TINY = settings.P2W_SEARCH["EMBEDDERS"]["default"]
IMAGES = [Image.new("RGB", (40, 30), colour) for colour in ((255, 0, 0), (0, 90, 255))]
TEXTS = ["a red mug", "blue trousers with stripes"]


def embedder(**params):
    return OpenCLIPEmbedder("test", {**TINY, **params})


def embeddings(backend):
    return backend.embed_images(IMAGES), backend.embed_texts(TEXTS)


def test_checkpoint_file_loads_exactly_and_vectors_are_normalised():
    images, texts = embeddings(embedder())
    assert images.shape == (2, 32) and texts.shape == (2, 32) and images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    state = torch.load(TINY["PRETRAINED"], weights_only=True)["state_dict"]
    loaded = embedder().load().model.state_dict()
    assert all(torch.equal(state[name], loaded[name]) for name in state)


def test_safetensors_and_local_dir_give_the_same_vectors(tmp_path):
    expected_images, expected_texts = embeddings(embedder())
    state = torch.load(TINY["PRETRAINED"], weights_only=True)["state_dict"]
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "tiny.safetensors")
    folder = tmp_path / "tiny-dir"
    folder.mkdir()
    shutil.copy(tmp_path / "tiny.safetensors", folder / "open_clip_model.safetensors")
    config = json.loads(open(TINY["MODEL_CONFIG"]).read())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))

    for backend in (embedder(PRETRAINED=str(tmp_path / "tiny.safetensors")),
                    embedder(MODEL=f"local-dir:{folder}", MODEL_CONFIG=None, PRETRAINED=None)):
        images, texts = embeddings(backend)
        np.testing.assert_allclose(images, expected_images, atol=1e-5)
        np.testing.assert_allclose(texts, expected_texts, atol=1e-5)


def test_identity_names_architecture_weights_checksum_and_dimension():
    identity = embedder().identity
    assert identity.architecture == "p2w-test-tiny"
    assert identity.weights == "tiny-seed0.pt"
    assert identity.checksum == file_sha256(TINY["PRETRAINED"]) and len(identity.checksum) == 64
    assert identity.dimensions == 32
    other = OpenCLIPEmbedder("next", settings.P2W_SEARCH["EMBEDDERS"]["next"]).identity
    assert (other.checksum, other.dimensions) != (identity.checksum, identity.dimensions)


def test_batches_smaller_than_the_input_give_the_same_vectors():
    many = IMAGES * 5
    np.testing.assert_allclose(embedder(BATCH_SIZE=3).embed_images(many), embedder().embed_images(many), atol=1e-5)


def test_missing_checkpoint_is_reported_with_the_setting():
    with pytest.raises(FileNotFoundError, match=r"Checkpoint /nowhere/x.pt of embedder 'test' does not exist"):
        embedder(PRETRAINED="/nowhere/x.pt").load()


def test_unknown_backend_path_names_the_setting(settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "EMBEDDERS": {"default": {"BACKEND": "p2w_search.nope.Embedder"}}}
    with pytest.raises(InvalidEmbedderError, match=r"P2W_SEARCH\['EMBEDDERS'\]\['default'\]\['BACKEND'\]"):
        get_embedder()
    assert issubclass(InvalidEmbedderError, P2WImproperlyConfigured)


def test_unknown_alias_is_reported(settings):
    with pytest.raises(InvalidEmbedderError, match="has no alias 'gpu'"):
        get_embedder("gpu")
