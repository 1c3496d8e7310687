"""Pic2Word pieces on a tiny random CLIP: composition, checkpoints, the training objective.

No database: everything here is pure torch on CPU.
"""

from pathlib import Path

import open_clip
import pytest
import torch

from p2w_search.pic2word import (
    PAPER_TEMPLATE, STAR, MappingMismatch, MappingNetwork, PromptError, compose, compose_text_features,
    cosine_schedule, load_mapping, mapping_loss, optimizer_groups, pseudo_word_features, save_mapping,
    train_mapping,
)

TINY_CONFIG = Path(__file__).resolve().parent / "clip" / "p2w-test-tiny.json"
IDENTITY = {"architecture": "p2w-test-tiny", "weights": "tiny.pt", "checksum": "a" * 64, "dimensions": 32}


@pytest.fixture(scope="module")
def clip():
    """(model, tokenizer) of the tiny CLIP: seeded random weights, eval mode, frozen."""
    open_clip.add_model_config(TINY_CONFIG)
    torch.manual_seed(0)
    model = open_clip.create_model("p2w-test-tiny").eval()
    model.requires_grad_(False)
    return model, open_clip.get_tokenizer("p2w-test-tiny")


def word_embedding(model, tokenizer, word):
    """The token embedding [1, width] of a word that is one token."""
    (token,) = tokenizer.encode(word)
    return model.token_embedding.weight[token][None].clone()


def tiny_mapping(model, seed=0):
    torch.manual_seed(seed)
    return MappingNetwork(embed_dim=32, middle_dim=16, output_dim=model.token_embedding.embedding_dim).eval()


# --- composition ---------------------------------------------------------------------------------


def test_real_word_in_place_of_star_equals_encoding_the_sentence(clip):
    model, tokenizer = clip
    red = word_embedding(model, tokenizer, "red")
    with torch.no_grad():
        composed = compose_text_features(model, tokenizer, red, ["a photo of * , in stripes"])
        expected = model.encode_text(tokenizer(["a photo of red , in stripes"]))
        other = model.encode_text(tokenizer(["a photo of blue , in stripes"]))
    assert composed.shape == (1, 32)
    torch.testing.assert_close(composed, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(composed, other, atol=1e-3)


def test_token_is_injected_at_the_star_position(clip):
    model, tokenizer = clip
    prompt = "a photo of * , in stripes"
    ids = tokenizer([prompt], context_length=model.context_length)[0]
    star_position = ids.tolist().index(tokenizer.encode(STAR)[0])
    marker = torch.full((1, model.token_embedding.embedding_dim), 7.0)
    seen = {}

    def record(module, inputs):
        seen["x"] = inputs[0].detach().clone()  # [batch, n_ctx, width] entering the transformer

    handle = model.transformer.register_forward_pre_hook(record)
    try:
        with torch.no_grad():
            compose_text_features(model, tokenizer, marker, [prompt])
    finally:
        handle.remove()
    length = seen["x"].shape[1]  # the prompt's positions (the tower runs up to its end-of-text token)
    without_position = seen["x"][0] - model.positional_embedding[:length]  # [length, width]
    rows = torch.isclose(without_position, marker, atol=1e-5).all(dim=-1).nonzero().flatten().tolist()
    assert rows == [star_position] == [4]  # <start> a photo of *


def test_compose_is_normalised_and_uses_the_paper_template(clip):
    model, tokenizer = clip
    mapping = tiny_mapping(model)
    images = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        queries = compose(model, tokenizer, mapping, images, ["in red", "with long sleeves"])
        direct = compose_text_features(model, tokenizer, mapping(images),
                                       [PAPER_TEMPLATE.format(text="in red"),
                                        "a photo of * , with long sleeves"])
    torch.testing.assert_close(queries.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(queries, torch.nn.functional.normalize(direct, dim=-1))


@pytest.mark.parametrize("prompt", ["a photo of a shirt", "a photo of * and * , in red", "a photo of *, in red"])
def test_prompt_needs_exactly_one_separate_star(clip, prompt):
    model, tokenizer = clip
    token = torch.zeros(1, model.token_embedding.embedding_dim)
    with pytest.raises(PromptError, match=r"\*"):
        compose_text_features(model, tokenizer, token, [prompt])


@pytest.mark.parametrize("template", ["a photo of * , in red", "a photo of {text}", "a * of * {text}"])
def test_template_needs_star_and_text(clip, template):
    model, tokenizer = clip
    with pytest.raises(PromptError, match="template"):
        compose(model, tokenizer, tiny_mapping(model), torch.randn(1, 32), ["in red"], template=template)


def test_too_long_modification_is_refused_with_its_token_count(clip):
    model, tokenizer = clip
    text = "in red " * 20  # 40 tokens; the tiny model's context is 32
    count = len(tokenizer.encode(PAPER_TEMPLATE.format(text=text))) + 2
    with pytest.raises(PromptError, match=rf"{count} tokens.*limit of {model.context_length}"):
        compose(model, tokenizer, tiny_mapping(model), torch.randn(1, 32), [text])


def test_model_without_builtin_text_tower_is_a_type_error():
    with pytest.raises(TypeError, match="text tower"):
        compose_text_features(torch.nn.Linear(2, 2), None, torch.zeros(1, 2), ["a photo of *"])


# --- checkpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "module."])
def test_authors_layout_loads_with_inferred_dims(tmp_path, prefix):
    torch.manual_seed(0)
    vit_l = MappingNetwork(embed_dim=768, output_dim=768).eval()
    assert list(vit_l.state_dict()) == ["layers.0.0.weight", "layers.0.0.bias", "layers.1.0.weight",
                                        "layers.1.0.bias", "fc_out.weight", "fc_out.bias"]
    state = {f"{prefix}{key}": value for key, value in vit_l.state_dict().items()}
    torch.save({"epoch": 3, "state_dict_img2text": state}, tmp_path / "pic2word.pt")

    loaded = load_mapping(tmp_path / "pic2word.pt", clip_identity={**IDENTITY, "dimensions": 768},
                          token_width=768)
    assert loaded.config == vit_l.config == dict(embed_dim=768, middle_dim=512, output_dim=768,
                                                 n_layers=2, dropout=0.1)
    x = torch.randn(3, 768)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), vit_l(x), atol=0, rtol=0)


def test_authors_layout_of_other_dims_is_a_mismatch(tmp_path):
    state = {"state_dict_img2text": MappingNetwork(embed_dim=768, output_dim=768).state_dict()}
    with pytest.raises(MappingMismatch, match="768-d image features.*32-d"):
        load_mapping(state, clip_identity=IDENTITY)
    with pytest.raises(MappingMismatch, match="768-d tokens.*token width is 64"):
        load_mapping(state, token_width=64)


def test_neither_layout_is_a_value_error(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "clip.pt")
    with pytest.raises(ValueError, match="neither"):
        load_mapping(tmp_path / "clip.pt")


def test_our_layout_round_trip_and_mismatch(clip, tmp_path):
    model, _ = clip
    mapping = tiny_mapping(model)
    save_mapping(mapping, tmp_path / "mapping.pt", clip_identity=IDENTITY, extra={"step": 30})
    assert [p.name for p in tmp_path.iterdir()] == ["mapping.pt"]  # no temp file left behind
    raw = torch.load(tmp_path / "mapping.pt", weights_only=True)
    assert (raw["format"], raw["clip"], raw["step"]) == ("p2w-mapping/1", IDENTITY, 30)

    loaded = load_mapping(tmp_path / "mapping.pt", clip_identity=IDENTITY, token_width=64)
    assert loaded.config == mapping.config and not loaded.training
    x = torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), mapping(x), atol=0, rtol=0)

    other = {**IDENTITY, "weights": "other.pt", "checksum": "b" * 64}
    with pytest.raises(MappingMismatch) as error:
        load_mapping(tmp_path / "mapping.pt", clip_identity=other)
    message = str(error.value)
    assert "p2w-test-tiny/tiny.pt (sha256 aaaaaaaaaaaa" in message
    assert "p2w-test-tiny/other.pt (sha256 bbbbbbbbbbbb" in message


# --- training ------------------------------------------------------------------------------------


def test_mapping_loss_trains_the_mapping_only(clip):
    model, tokenizer = clip
    mapping = tiny_mapping(model).train()
    loss = mapping_loss(model, tokenizer, mapping, torch.randn(8, 32))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mapping.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_pseudo_word_features_use_the_prompt(clip):
    model, tokenizer = clip
    mapping = tiny_mapping(model)
    images = torch.randn(2, 32)
    with torch.no_grad():
        photo = pseudo_word_features(model, tokenizer, mapping, images)
        sketch = pseudo_word_features(model, tokenizer, mapping, images, prompt="a sketch of *")
        direct = compose_text_features(model, tokenizer, mapping(images), ["a photo of *"] * 2)
    torch.testing.assert_close(photo, direct)
    assert not torch.allclose(photo, sketch, atol=1e-3)


def test_short_training_lowers_the_loss(clip):
    model, tokenizer = clip
    features = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    seen = []
    torch.manual_seed(0)  # the mapping's initialisation
    model.requires_grad_(True)  # train_mapping freezes CLIP for the call and restores the flags
    try:
        result = train_mapping(model, tokenizer, features, steps=30, batch_size=64, lr=1e-3, weight_decay=0.0,
                               warmup=3, middle_dim=16, progress=lambda step, loss: seen.append(step))
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    finally:
        model.requires_grad_(False)
    assert seen == list(range(30)) and result["step"] == 30 and len(result["losses"]) == 30
    with torch.no_grad():
        after = mapping_loss(model, tokenizer, result["mapping"], features).item()
    assert after < result["losses"][0] - 0.1


PAPER_OPTIMIZER = {"betas": (0.9, 0.98), "eps": 1e-6, "decay": "weights"}


@pytest.mark.parametrize("optimizer", [{}, PAPER_OPTIMIZER], ids=["default", "paper"])
def test_resume_continues_exactly(clip, optimizer):
    model, tokenizer = clip
    features = torch.randn(40, 32, generator=torch.Generator().manual_seed(3))
    common = dict(steps=10, batch_size=16, lr=1e-3, warmup=2, seed=5, middle_dim=16, **optimizer)

    torch.manual_seed(0)
    whole = train_mapping(model, tokenizer, features, **common)
    torch.manual_seed(0)
    first = train_mapping(model, tokenizer, features, until=5, **common)
    assert first["step"] == 5
    torch.manual_seed(123)  # the global RNG must not matter on resume
    second = train_mapping(model, tokenizer, features, mapping=first["mapping"],
                           optimizer_state=first["optimizer_state"], start_step=5, **common)

    assert second["step"] == 10
    assert first["losses"] + second["losses"] == pytest.approx(whole["losses"], abs=1e-6)
    for key, value in whole["mapping"].state_dict().items():
        torch.testing.assert_close(second["mapping"].state_dict()[key], value, atol=1e-6, rtol=0)


@pytest.mark.parametrize("other", [{"betas": (0.9, 0.98)}, {"eps": 1e-6}, {"weight_decay": 0.2}, {"decay": "weights"}])
def test_resuming_an_optimizer_state_with_other_settings_is_refused(clip, other):
    model, tokenizer = clip
    features = torch.randn(40, 32, generator=torch.Generator().manual_seed(3))
    common = dict(steps=4, batch_size=16, warmup=2, middle_dim=16)
    first = train_mapping(model, tokenizer, features, until=2, **common)
    with pytest.raises(ValueError, match="other settings|parameter groups"):
        train_mapping(model, tokenizer, features, mapping=first["mapping"], optimizer_state=first["optimizer_state"],
                      start_step=2, **common, **other)


def _named_groups(mapping, groups):
    """[(weight_decay, [parameter names])] of AdamW parameter groups."""
    names = {id(p): name for name, p in mapping.named_parameters()}
    return [(g["weight_decay"], sorted(names[id(p)] for p in g["params"])) for g in groups]


def test_weight_decay_applies_to_weights_only_when_asked(clip):
    model, tokenizer = clip
    features = torch.randn(40, 32, generator=torch.Generator().manual_seed(3))
    common = dict(steps=1, batch_size=16, lr=1e-2, warmup=1, middle_dim=16, betas=(0.9, 0.98), eps=1e-6)
    weights = ["fc_out.weight", "layers.0.0.weight", "layers.1.0.weight"]
    biases = ["fc_out.bias", "layers.0.0.bias", "layers.1.0.bias"]
    mapping = tiny_mapping(model)
    assert _named_groups(mapping, optimizer_groups(mapping, weight_decay=0.5, decay="weights")) == [
        (0.5, weights), (0.0, biases)]
    assert _named_groups(mapping, optimizer_groups(mapping, weight_decay=0.5, decay="all")) == [
        (0.5, sorted(weights + biases))]
    with pytest.raises(ValueError, match="decay must be one of"):
        optimizer_groups(mapping, weight_decay=0.1, decay="biases")

    # train_mapping's optimizer has those groups, with the betas and eps asked for ...
    only = train_mapping(model, tokenizer, features, weight_decay=0.5, decay="weights", **common)
    assert [(g["weight_decay"], len(g["params"]), tuple(g["betas"]), g["eps"])
            for g in only["optimizer_state"]["param_groups"]] == [(0.5, 3, (0.9, 0.98), 1e-6), (0.0, 3, (0.9, 0.98), 1e-6)]
    # ... and in effect: with decay on weights only, a bias moves as if there were no decay at all.
    none = train_mapping(model, tokenizer, features, weight_decay=0.0, decay="all", **common)
    every = train_mapping(model, tokenizer, features, weight_decay=0.5, decay="all", **common)
    only, none, every = (dict(r["mapping"].named_parameters()) for r in (only, none, every))
    torch.testing.assert_close(only["fc_out.bias"], none["fc_out.bias"], atol=0, rtol=0)
    assert not torch.allclose(every["fc_out.bias"], none["fc_out.bias"])
    torch.testing.assert_close(only["fc_out.weight"], every["fc_out.weight"], atol=0, rtol=0)
    assert not torch.allclose(only["fc_out.weight"], none["fc_out.weight"])


def test_warmup_and_schedule_reach_the_optimizer(clip):
    model, tokenizer = clip
    features = torch.randn(40, 32, generator=torch.Generator().manual_seed(3))

    def lr_after(steps, until, warmup):
        state = train_mapping(model, tokenizer, features, steps=steps, until=until, batch_size=8, lr=1e-4,
                              warmup=warmup, middle_dim=16)["optimizer_state"]
        return state["param_groups"][0]["lr"]  # the rate the last step ran with

    # The paper's 10,000 warm-up steps in a short run: the rate climbs linearly and never peaks.
    assert lr_after(2400, 3, 10_000) == pytest.approx(1e-4 * 3 / 10_000, rel=1e-9)
    # The default warm-up is steps // 20: 2 steps of 40, so the first step runs at half the rate.
    assert lr_after(40, 1, None) == pytest.approx(0.5e-4, rel=1e-9)


def test_cosine_schedule():
    assert cosine_schedule(0, total=100, warmup=10, base_lr=1.0) == pytest.approx(0.1)
    assert cosine_schedule(10, total=100, warmup=10, base_lr=1.0) == pytest.approx(1.0)
    assert cosine_schedule(55, total=100, warmup=10, base_lr=1.0) == pytest.approx(0.5)
    assert cosine_schedule(100, total=100, warmup=10, base_lr=1.0) == pytest.approx(0.0)
    assert cosine_schedule(99, total=100, warmup=10, base_lr=2.0) < 0.01


def test_schedule_of_the_paper_warmup_at_the_demo_budget():
    """2400 steps with 10,000 warm-up steps end at 24 % of the peak rate, still rising."""
    rates = [cosine_schedule(step, total=2400, warmup=10_000, base_lr=1e-4) for step in (0, 1199, 2399)]
    assert rates == pytest.approx([1e-8, 1.2e-5, 2.4e-5], rel=1e-12)
    # The default warm-up of that budget (2400 // 20 = 120) peaks at step 120, half-way down at 1260.
    assert cosine_schedule(119, total=2400, warmup=120, base_lr=1e-4) == pytest.approx(1e-4)
    assert cosine_schedule(1260, total=2400, warmup=120, base_lr=1e-4) == pytest.approx(0.5e-4)
