"""Training the demo CLIP: a tiny run learns, saves fp16 weights open_clip loads, and never sees held-out products."""

from pathlib import Path

import numpy as np
import pytest
import torch

from shop_demo.catalog import generator
from shop_demo.clip import training

TINY = Path(__file__).parent / "clip" / "p2w-test-tiny.json"
RUN = dict(model_name="p2w-test-tiny", config_path=TINY, batch_size=16, lr=2e-3, warmup=3, weight_decay=0.1,
           catalog_size=200, pool_size=160, render_workers=1)


@pytest.fixture(scope="module")
def sampled():
    """Attributes of every product the sampler rendered or captioned during the tiny run."""
    return {"rendered": [], "captioned": []}


@pytest.fixture(scope="module")
def tiny_run(sampled):
    # Instrument the two ways a product reaches the model, its photo and its caption, for this run only.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "render", lambda product, **kw: (
            sampled["rendered"].append(product.attributes), generator.render(product, **kw))[1])
        patch.setattr(training, "captions_for", lambda attributes, rng, **kw: (
            sampled["captioned"].append(attributes), generator.captions_for(attributes, rng, **kw))[1])
        return training.train_clip(steps=20, seed=0, **RUN)


def test_loss_falls(tiny_run):
    losses = tiny_run["losses"]
    assert tiny_run["step"] == 20 and len(losses) == 20 and not tiny_run["stopped_early"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_no_held_out_product_is_sampled(tiny_run, sampled):
    catalogue = generator.generate_products(RUN["catalog_size"], seed=0)
    assert any(generator.is_held_out(p.attributes) for p in catalogue)  # there was something to leak
    assert len(sampled["rendered"]) == RUN["pool_size"]
    assert len(sampled["captioned"]) == 20 * RUN["batch_size"]
    assert not any(generator.is_held_out(a) for a in sampled["rendered"] + sampled["captioned"])


def test_fp16_checkpoint_loads_into_open_clip(tiny_run, tmp_path):
    import open_clip

    path = training.save_checkpoint(tiny_run["model"], tmp_path / "tiny.pt", extra={"step": 20})
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 20
    assert all(v.dtype == torch.float16 for v in saved["state_dict"].values() if v.is_floating_point())
    loaded, _, _ = open_clip.create_model_and_transforms("p2w-test-tiny", pretrained=str(path))
    expected = tiny_run["model"].state_dict()
    for name, value in loaded.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, expected[name].half().float(), rtol=0, atol=0, msg=name)
    assert not list(tmp_path.glob("*.tmp"))


def test_same_seed_same_first_batch():
    products = generator.generate_products(RUN["catalog_size"], seed=0)
    pairs = [training.TrainingPairs(products, seed=s, pool_size=64, image_size=32, workers=1) for s in (0, 0, 1)]
    first = [p.batch(0, 16) for p in pairs]
    assert first[0][1] == first[1][1]
    assert [np.asarray(i).tobytes() for i in first[0][0]] == [np.asarray(i).tobytes() for i in first[1][0]]
    assert first[0][1] != first[2][1]


def test_resume_continues_the_same_run(tiny_run, tmp_path):
    state = training.save_training_state(tiny_run, tmp_path / "state.pt")
    more = training.train_clip(steps=22, seed=0, resume=state, **RUN)
    assert more["step"] == 22 and more["losses"][:20] == tiny_run["losses"] and len(more["losses"]) == 22
    with pytest.raises(ValueError, match="seed"):
        training.train_clip(steps=22, seed=1, resume=state, **RUN)


def test_the_text_tower_cut_at_the_longest_caption_trains_as_the_whole_context(monkeypatch):
    cut = training.train_clip(steps=4, seed=0, **RUN)["losses"]
    whole = training.encode_text_ids
    monkeypatch.setattr(training, "encode_text_ids", lambda model, ids, trim: whole(model, ids, trim=False))
    assert training.train_clip(steps=4, seed=0, **RUN)["losses"] == pytest.approx(cut, rel=1e-5)

    def one_short(model, ids, trim):  # a cut one position too early: the longest captions lose their last word
        eot = int(ids.max())  # the end-of-text token has the highest id (argmax pooling)
        ids = ids[:, :int(ids.argmax(dim=-1).max())].clone()
        ids[(ids != eot).all(dim=-1), -1] = eot
        return whole(model, ids, trim=True)

    monkeypatch.setattr(training, "encode_text_ids", one_short)
    assert training.train_clip(steps=4, seed=0, **RUN)["losses"] != pytest.approx(cut, rel=1e-3)


def test_time_limit_stops_cleanly():
    result = training.train_clip(steps=1000, seed=0, time_limit_s=0.0, **RUN)
    assert result["stopped_early"] and result["step"] == 0 and result["losses"] == []


def test_attribute_accuracy_reports_seen_and_held_out(tiny_run):
    products = generator.generate_products(60, seed=3)
    report = training.attribute_accuracy(tiny_run["model"], tiny_run["tokenizer"], tiny_run["preprocess"],
                                         products, seed=0)
    held = sum(generator.is_held_out(p.attributes) for p in products)
    assert report["held_out"]["n"] == held and report["seen"]["n"] == len(products) - held
    for group in report.values():
        # Fractions of the group's products, and "all three right" is right on each attribute too.
        assert all(abs(group[k] * group["n"] - round(group[k] * group["n"])) < 1e-9
                   for k in ("kind", "colour", "pattern", "all"))
        assert group["all"] <= min(group["kind"], group["colour"], group["pattern"])
    assert tiny_run["model"].training  # mode restored


def tokens_seen(monkeypatch):
    """The number of tokens the vision tower's transformer got at each training step."""
    seen, features = [], training._features

    def counting(model, images, texts):
        handle = model.visual.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
        try:
            return features(model, images, texts)
        finally:
            handle.remove()

    monkeypatch.setattr(training, "_features", counting)
    return seen


def test_patch_dropout_leaves_out_half_the_patches_but_in_the_unmasked_steps(monkeypatch):
    seen = tokens_seen(monkeypatch)
    result = training.train_clip(steps=5, seed=0, patch_dropout=0.5, unmasked_steps=2, **RUN)
    # 32 px in patches of 8: 16 patches and the class token; half the patches kept while masking.
    assert seen == [9, 9, 9, 17, 17]
    assert result["hparams"]["patch_dropout"] == 0.5 and result["hparams"]["unmasked_steps"] == 2
    result["model"].train()  # the trained model serves every patch, in either mode
    assert isinstance(result["model"].visual.patch_dropout, torch.nn.Identity)


def test_no_patch_dropout_sees_every_patch(monkeypatch):
    seen = tokens_seen(monkeypatch)
    training.train_clip(steps=3, seed=0, **RUN)
    assert seen == [17, 17, 17]


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_patch_dropout_outside_0_to_1_is_refused(fraction):
    with pytest.raises(ValueError, match=f"patch_dropout must be at least 0 and below 1, not {fraction}"):
        training.train_clip(steps=1, seed=0, patch_dropout=fraction, **RUN)


@pytest.mark.parametrize("unmasked", [-1, 2])
def test_unmasked_steps_outside_the_run_are_refused(unmasked):
    with pytest.raises(ValueError, match=f"unmasked_steps must be from 0 to steps \\(1\\), not {unmasked}"):
        training.train_clip(steps=1, seed=0, patch_dropout=0.5, unmasked_steps=unmasked, **RUN)


def test_photos_batched_are_the_photos_preprocessed_one_by_one():
    import open_clip

    from p2w_search.embedders.openclip import register_model_config

    register_model_config(TINY)
    _, _, preprocess = open_clip.create_model_and_transforms("p2w-test-tiny")
    products = generator.generate_products(RUN["catalog_size"], seed=0)
    for size in (32, 48):  # the model's own size, then photos its preprocess must resize
        pairs = training.TrainingPairs(products, seed=0, pool_size=64, image_size=size, workers=1)
        transform = training._photo_transform(preprocess, pairs.images[0])
        assert transform.__name__ == ("batched" if size == 32 else "photo_by_photo")
        photos, captions = pairs.arrays(2, 16)
        pil, same_captions = pairs.batch(2, 16)
        assert captions == same_captions
        assert torch.equal(transform(photos), torch.stack([preprocess(photo) for photo in pil]))


def test_token_rows_kept_are_the_tokenizers():
    import open_clip

    from p2w_search.embedders.openclip import register_model_config

    register_model_config(TINY)
    tokenizer = open_clip.get_tokenizer("p2w-test-tiny")
    tokens = training._Tokens(tokenizer)
    first, again = ["a red mug", "a blue cap", "a red mug"], ["a blue cap", "a green bag"]
    assert torch.equal(tokens(first), tokenizer(first))
    assert torch.equal(tokens(again), tokenizer(again))
    assert list(tokens.rows) == ["a red mug", "a blue cap", "a green bag"]


def test_the_batched_photos_train_as_the_photos_one_by_one(monkeypatch):
    batched = training.train_clip(steps=4, seed=0, **RUN)["losses"]
    monkeypatch.setattr(training, "_photo_transform", lambda preprocess, sample: lambda photos: torch.stack(
        [preprocess(training.Image.fromarray(photo)) for photo in photos]))
    assert training.train_clip(steps=4, seed=0, **RUN)["losses"] == batched


def test_the_command_leaves_a_tenth_of_the_steps_unmasked_unless_told(tmp_path):
    import io

    from django.core.management import call_command

    def hparams(name, **options):
        call_command("train_demo_clip", steps=10, batch_size=16, lr=2e-3, warmup=3, catalog_size=200, pool_size=160,
                     config=TINY, out=tmp_path / f"{name}.pt", state=tmp_path / f"{name}.state.pt", eval_products=20,
                     stdout=io.StringIO(), stderr=io.StringIO(), **options)
        return torch.load(tmp_path / f"{name}.pt", map_location="cpu", weights_only=False)["hparams"]

    default = hparams("default")
    assert default["patch_dropout"] == 0.5 and default["unmasked_steps"] == 1
    assert hparams("told", unmasked_steps=4)["unmasked_steps"] == 4
    assert hparams("no-dropout", patch_dropout=0.0)["unmasked_steps"] == 0
