"""The text tower run up to the longest prompt's end, not the whole context: the same features, exactly."""

import pytest
import torch

from p2w_search.embedders import get_embedder
from p2w_search.pic2word import compose_text_features, encode_text_ids

TEXTS = ["a red t-shirt", "a photo of a large black leather boot with a white star print on the side", "x"]


@pytest.fixture(scope="module")
def loaded():
    return get_embedder().load()


def full_context(model, tokenizer, texts):
    with torch.inference_mode():
        return model.encode_text(tokenizer(texts))  # open_clip's own: all 32 positions of the tiny CLIP


def test_trimmed_text_features_equal_open_clips_full_context(loaded):
    with torch.inference_mode():
        trimmed = encode_text_ids(loaded.model, loaded.tokenizer(TEXTS))
    full = full_context(loaded.model, loaded.tokenizer, TEXTS)
    assert trimmed.shape == full.shape and (trimmed - full).abs().max() <= 1e-5


def test_the_embedder_encodes_texts_trimmed(loaded, monkeypatch):
    lengths = []
    original = loaded.model.transformer.forward
    monkeypatch.setattr(loaded.model.transformer, "forward",
                        lambda x, **kw: (lengths.append(x.shape[1]), original(x, **kw))[1])
    vectors = get_embedder().embed_texts(["a red t-shirt", "x"])
    longest = int(loaded.tokenizer(["a red t-shirt"]).argmax(dim=-1)) + 1  # its end-of-text token and before
    assert lengths == [longest] and longest < loaded.model.context_length
    full = torch.nn.functional.normalize(full_context(loaded.model, loaded.tokenizer, ["a red t-shirt", "x"]), dim=-1)
    assert (torch.as_tensor(vectors) - full).abs().max() <= 1e-5


def test_a_trimmed_composition_equals_the_full_one(loaded):
    tokens = torch.randn(2, loaded.model.token_embedding.embedding_dim)
    prompts = ["a photo of * , in red", "a photo of * , with a white star print on a black canvas"]
    with torch.inference_mode():
        trimmed = compose_text_features(loaded.model, loaded.tokenizer, tokens, prompts)
        full = compose_text_features(loaded.model, loaded.tokenizer, tokens, prompts, trim=False)
    assert (trimmed - full).abs().max() <= 1e-5


def test_a_tower_without_a_causal_mask_runs_whole(loaded):
    import copy

    model = copy.deepcopy(loaded.model)  # a bidirectional tower: padding would change the features
    model.attn_mask = None
    lengths = []
    model.transformer.register_forward_pre_hook(lambda module, inputs: lengths.append(inputs[0].shape[1]))
    with torch.inference_mode():
        encode_text_ids(model, loaded.tokenizer(["x"]))
    assert lengths == [model.context_length]


def test_the_mapping_loss_and_its_gradients_are_the_same_trimmed(loaded):
    from p2w_search.pic2word import MappingNetwork, mapping_loss

    torch.manual_seed(0)
    mapping = MappingNetwork(embed_dim=32, middle_dim=16, output_dim=loaded.model.token_embedding.embedding_dim,
                             dropout=0.0)
    features = torch.randn(6, 32)
    results = []
    for trim in (True, False):
        mapping.zero_grad()
        loss = mapping_loss(loaded.model, loaded.tokenizer, mapping, features, trim=trim)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in mapping.parameters()]))
    (trimmed, grads_trimmed), (full, grads_full) = results
    assert abs(trimmed - full) <= 1e-5
    assert all((a - b).abs().max() <= 1e-5 for a, b in zip(grads_trimmed, grads_full))
