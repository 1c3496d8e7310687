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
