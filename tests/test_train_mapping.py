"""Training a Pic2Word mapping on the catalog's own images: the command, resuming, the CLIP it belongs to."""

import pytest
import torch
from django.core.management import CommandError, call_command

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.models import ImageEmbedding
from p2w_search.pic2word import MappingMismatch, load_mapping
from tests.factories import ProductImageFactory, png


@pytest.fixture
def catalog(db, media):
    for i in range(12):
        ProductImageFactory(data=png((20 * i, 255 - 20 * i, 90)))
    model = indexing.register_model()
    indexing.queue_missing(model)
    indexing.embed_pending(model.pk, list(ImageEmbedding.objects.values_list("pk", flat=True)))
    return model


def test_command_trains_and_records_the_clip(catalog, tmp_path):
    out = tmp_path / "mapping.pt"
    call_command("p2w_train_mapping", out=str(out), steps=6, batch_size=8)

    saved = torch.load(out, weights_only=True)
    assert saved["clip"]["checksum"] == get_embedder().identity.checksum
    assert saved["training"]["images"] == 12 and saved["training"]["steps"] == 6
    assert "resume" not in saved  # a finished file keeps only what serving needs
    load_mapping(out, clip_identity=get_embedder().identity)
    other = get_embedder("next").identity
    with pytest.raises(MappingMismatch, match="This mapping was trained for"):
        load_mapping(out, clip_identity=other)


def test_an_interrupted_run_resumes_to_the_same_weights(catalog, tmp_path, monkeypatch):
    whole = tmp_path / "whole.pt"
    call_command("p2w_train_mapping", out=str(whole), steps=6, batch_size=8)

    import p2w_search.training as training

    original = training.train_mapping
    calls = []

    def stop_after_first_checkpoint(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args, **kwargs)

    resumed = tmp_path / "resumed.pt"
    monkeypatch.setattr(training, "train_mapping", stop_after_first_checkpoint)
    monkeypatch.setattr(training, "fit_mapping", training.fit_mapping)
    with pytest.raises(KeyboardInterrupt):
        training.fit_mapping(get_embedder(), _features(catalog), out=resumed, steps=6, batch_size=8,
                             checkpoint_every=3)
    assert torch.load(resumed, weights_only=True)["resume"]["step"] == 3
    monkeypatch.setattr(training, "train_mapping", original)
    call_command("p2w_train_mapping", out=str(resumed), steps=6, batch_size=8, resume=True)

    a, b = (torch.load(p, weights_only=True)["state_dict_img2text"] for p in (whole, resumed))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resuming_a_finished_mapping_is_refused(catalog, tmp_path):
    out = tmp_path / "m.pt"
    call_command("p2w_train_mapping", out=str(out), steps=2, batch_size=8)
    with pytest.raises(ValueError, match="is a finished mapping"):
        call_command("p2w_train_mapping", out=str(out), steps=2, batch_size=8, resume=True)


def test_an_empty_catalog_is_refused(db, tmp_path):
    indexing.register_model()
    with pytest.raises(CommandError, match="has 0 embedded images"):
        call_command("p2w_train_mapping", out=str(tmp_path / "m.pt"), steps=2)


def _features(model):
    import numpy as np

    rows = model.embeddings.filter(state="ready").order_by("pk").values_list("vector", "norm")
    return np.array([np.asarray(v, np.float32) * n for v, n in rows])



@pytest.mark.parametrize("command", ["p2w_train_mapping", "p2w_evaluate", "p2w_index"])
def test_commands_without_a_model_say_what_to_do(db, tmp_path, command):
    cirr = tmp_path / "cap.rc2.test1.json"
    cirr.write_text("[]")
    args, options = {"p2w_train_mapping": ((), {"out": str(tmp_path / "m.pt")}),
                     "p2w_evaluate": ((), {"cirr": str(cirr)}),
                     "p2w_index": (("wait",), {})}[command]
    with pytest.raises(CommandError, match=r"no model serves yet; embed the catalog first \(manage.py p2w_index embed\)"):
        call_command(command, *args, **options)
    with pytest.raises(CommandError, match="no embedding model 999"):
        call_command(command, *args, "--model", "999", **options)
