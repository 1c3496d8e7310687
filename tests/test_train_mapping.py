"""Training a Pic2Word mapping on the catalog's own images: the command, resuming, the CLIP it belongs to."""

import math

import pytest
import torch
from django.core.management import CommandError, call_command

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.models import ImageEmbedding
from p2w_search.pic2word import MappingMismatch, load_mapping
from p2w_search.training import training_settings
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


def _interrupt_after_first_checkpoint(monkeypatch, catalog, out, **settings):
    """Start fit_mapping into ``out`` (6 steps, a checkpoint every 3) and stop it after the checkpoint."""
    import p2w_search.training as training

    original = training.train_mapping
    calls = []

    def stop_after_first_checkpoint(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_mapping", stop_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        training.fit_mapping(get_embedder(), _features(catalog), out=out, steps=6, checkpoint_every=3, **settings)
    monkeypatch.setattr(training, "train_mapping", original)
    return torch.load(out, weights_only=True)["resume"]


PAPER = {"betas": [0.9, 0.98], "eps": 1e-6, "weight_decay": 0.1, "decay": "weights", "warmup": 10_000}


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_an_interrupted_run_resumes_to_the_same_weights(catalog, tmp_path, monkeypatch, preset):
    whole = tmp_path / "whole.pt"
    call_command("p2w_train_mapping", out=str(whole), steps=6, batch_size=8, preset=preset)

    resumed = tmp_path / "resumed.pt"
    settings = training_settings(preset, batch_size=8)
    checkpoint = _interrupt_after_first_checkpoint(monkeypatch, catalog, resumed, **settings)
    assert checkpoint["step"] == 3
    assert {key: checkpoint[key] for key in PAPER} == (PAPER if preset == "paper" else {
        "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.1, "decay": "all", "warmup": 1})
    # The settings reached the optimizer: its groups, and the rate of step 3 (index 2) in its warm-up or decay.
    groups = checkpoint["optimizer_state"]["param_groups"]
    if preset == "paper":
        assert [(g["betas"], g["eps"], g["weight_decay"]) for g in groups] == [((0.9, 0.98), 1e-6, 0.1),
                                                                                ((0.9, 0.98), 1e-6, 0.0)]
        assert groups[0]["lr"] == pytest.approx(1e-4 * 3 / 10_000, rel=1e-9)
    else:
        assert [(g["betas"], g["eps"], g["weight_decay"]) for g in groups] == [((0.9, 0.999), 1e-8, 0.1)]
        assert groups[0]["lr"] == pytest.approx(0.5e-4 * (1 + math.cos(math.pi / 5)), rel=1e-9)
    call_command("p2w_train_mapping", out=str(resumed), steps=6, batch_size=8, preset=preset, resume=True)

    a, b = (torch.load(p, weights_only=True)["state_dict_img2text"] for p in (whole, resumed))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_resume_with_other_settings_is_refused_naming_each(catalog, tmp_path, monkeypatch):
    out = tmp_path / "m.pt"
    _interrupt_after_first_checkpoint(monkeypatch, catalog, out, **training_settings("paper"))
    before = out.read_bytes()
    with pytest.raises(CommandError) as refused:
        call_command("p2w_train_mapping", out=str(out), steps=6, resume=True)
    assert str(refused.value) == (
        f"{out} was started with other settings (batch_size 128 there, 64 asked; betas 0.9 0.98 there, 0.9 0.999 "
        "asked; eps 1e-06 there, 1e-08 asked; decay weights there, all asked; warmup 10000 there, 1 asked); "
        "resume with the same values, or train into another file")
    with pytest.raises(CommandError, match=r"\(warmup 10000 there, 120 asked\)"):
        call_command("p2w_train_mapping", out=str(out), steps=6, resume=True, preset="paper", warmup=120)
    assert out.read_bytes() == before  # nothing trained, nothing written
    call_command("p2w_train_mapping", out=str(out), steps=6, resume=True, preset="paper")
    assert torch.load(out, weights_only=True)["training"]["decay"] == "weights"


def test_the_paper_preset_sets_the_authors_values(catalog, tmp_path):
    assert training_settings("paper") == {"lr": 1e-4, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.1,
                                          "decay": "weights", "warmup": 10_000, "batch_size": 128}
    # A single option overrides the preset; the others stay the authors'.
    assert training_settings("paper", warmup=120, betas=[0.9, 0.99]) == {
        **training_settings("paper"), "warmup": 120, "betas": (0.9, 0.99)}
    out = tmp_path / "paper.pt"
    call_command("p2w_train_mapping", out=str(out), steps=2, preset="paper")
    recorded = torch.load(out, weights_only=True)["training"]
    assert {key: recorded[key] for key in ("lr", "betas", "eps", "weight_decay", "decay", "warmup", "batch_size")} \
        == {"lr": 1e-4, "betas": [0.9, 0.98], "eps": 1e-6, "weight_decay": 0.1, "decay": "weights",
            "warmup": 10_000, "batch_size": 128}
    with pytest.raises(CommandError, match="invalid choice: 'authors'"):
        call_command("p2w_train_mapping", "--preset=authors", out=str(out), steps=2)


def test_resuming_a_finished_mapping_is_refused(catalog, tmp_path):
    out = tmp_path / "m.pt"
    call_command("p2w_train_mapping", out=str(out), steps=2, batch_size=8)
    with pytest.raises(CommandError, match="is a finished mapping"):
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
