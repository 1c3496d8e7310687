"""Management commands refuse bad options with a one-line CommandError naming the option and the reason.

Each refusal comes before any work: no training step, no rendering, no file left in the uploads
storage and no job row.
"""

import re
import zipfile

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from p2w_search import indexing
from p2w_search.embedders import get_embedder
from p2w_search.models import ImageEmbedding, ImportJob
from p2w_search.pic2word import MappingNetwork, save_mapping
from tests.factories import MerchantFactory, ProductFactory, ProductImageFactory, png


def uploaded_files(media):
    """The files in the uploads storage (the media fixture puts it beside MEDIA_ROOT)."""
    uploads = media.parent / "uploads"
    return sorted(path for path in uploads.rglob("*") if path.is_file()) if uploads.exists() else []


def refused(message, *args, **options):
    """Run the command; assert it raises CommandError with exactly ``message``."""
    with pytest.raises(CommandError, match=f"^{re.escape(message)}$"):
        call_command(*args, **options)


# --- p2w_import --------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    """A one-row manifest and the zip of its image."""
    manifest = tmp_path / "c.csv"
    manifest.write_text("sku,title,category,price,images\nX-1,One,mug,9.5,red.png\n")
    archive = tmp_path / "i.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("red.png", png())
    return manifest, archive


@pytest.fixture
def merchant(db):
    return str(MerchantFactory().pk)


def assert_nothing_left(media):
    assert not ImportJob.objects.exists()
    assert uploaded_files(media) == []


@pytest.mark.parametrize("missing", ["manifest", "archive"])
@pytest.mark.parametrize("kind, reason", [("missing", "No such file or directory"), ("folder", "Is a directory")])
def test_import_refuses_a_file_it_cannot_read(files, merchant, media, tmp_path, missing, kind, reason):
    manifest, archive = files
    bad = tmp_path / "nope.csv" if kind == "missing" else tmp_path
    if missing == "manifest":
        refused(f"manifest: cannot read {bad}: {reason}", "p2w_import", str(bad), "--merchant", merchant)
    else:
        refused(f"--archive: cannot read {bad}: {reason}",
                "p2w_import", str(manifest), "--merchant", merchant, "--archive", str(bad))
    assert_nothing_left(media)


@pytest.mark.parametrize("value, full_sync, message", [
    (str(2**31), True, "confirm_unlist must be at most 2147483647: it is the number of products the full sync "
                       "unlists, as a refused sync told you."),
    ("-1", True, "Ensure this value is greater than or equal to 0."),
    ("5", False, "confirm_unlist only applies to a full sync (full_sync=true)."),  # the API's rule too
], ids=["2**31", "negative", "without a full sync"])
def test_import_refuses_a_confirmation_the_api_refuses(files, merchant, media, value, full_sync, message):
    manifest, archive = files
    refused(f"--confirm-unlist: {message}", "p2w_import", str(manifest), "--merchant", merchant,
            "--archive", str(archive), "--confirm-unlist", value, *(["--full-sync"] if full_sync else []))
    assert_nothing_left(media)


def test_import_deletes_its_files_when_the_job_row_is_not_saved(files, merchant, media, monkeypatch):
    manifest, archive = files

    def fail(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ImportJob, "save", fail)
    with pytest.raises(RuntimeError, match="the database went away"):
        call_command("p2w_import", str(manifest), "--merchant", merchant, "--archive", str(archive))
    assert_nothing_left(media)


# --- p2w_index embed ---------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["nope", ""])
def test_embed_refuses_an_unknown_alias(db, alias):
    refused(f"--alias: no embedder {alias!r}; P2W_SEARCH['EMBEDDERS'] has 'default', 'next'",
            "p2w_index", "embed", "--alias", alias)


def test_embed_refuses_an_alias_whose_backend_cannot_be_imported(db, settings):
    settings.P2W_SEARCH = {**settings.P2W_SEARCH, "EMBEDDERS": {
        **settings.P2W_SEARCH["EMBEDDERS"], "broken": {"BACKEND": "p2w_search.embedders.nowhere.Nothing"}}}
    with pytest.raises(CommandError, match=re.escape(
            "P2W_SEARCH['EMBEDDERS']['broken']['BACKEND'] must be the dotted path of an embedder class: ")):
        call_command("p2w_index", "embed", "--alias", "broken")


# --- p2w_train_mapping and train_demo_mapping ----------------------------------------------------


@pytest.fixture
def embedded(db, media):
    """Three ready embeddings of the serving model, stored directly (nothing is embedded)."""
    model = indexing.register_model()
    rng = np.random.default_rng(0)
    for _ in range(3):
        ImageEmbedding.objects.create(image=ProductImageFactory(product=ProductFactory()), model=model,
                                      state="ready", vector=rng.normal(size=model.dimensions).tolist(), norm=1.0)
    return model


@pytest.fixture
def no_training(monkeypatch):
    """Training fails the test: every refusal must come before it."""
    import p2w_search.training as training

    def train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(training, "train_mapping", train)


BAD_TRAINING = [
    (["--steps", "0"], "--steps: must be at least 1, not 0"),
    (["--steps", "-1"], "--steps: must be at least 1, not -1"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, not 0"),
    (["--batch-size", "-3"], "--batch-size: must be at least 1, not -3"),
    (["--lr", "nan"], "--lr: must be a finite number above 0, not nan"),
    (["--lr", "inf"], "--lr: must be a finite number above 0, not inf"),
    (["--lr", "0"], "--lr: must be a finite number above 0, not 0"),
    (["--lr=-1e-4"], "--lr: must be a finite number above 0, not -0.0001"),
    (["--eps", "-1"], "--eps: must be a finite number of at least 0, not -1"),
    (["--weight-decay", "nan"], "--weight-decay: must be a finite number of at least 0, not nan"),
    (["--betas", "1", "0.999"], "--betas: each must be at least 0 and below 1, not 1 0.999"),
    (["--warmup", "-5"], "--warmup: must be at least 0, not -5"),
]


@pytest.mark.parametrize("argv, message", BAD_TRAINING, ids=[" ".join(argv) for argv, _ in BAD_TRAINING])
def test_train_mapping_refuses_bad_settings_before_training(embedded, no_training, tmp_path, argv, message):
    refused(message, "p2w_train_mapping", "--out", str(tmp_path / "out" / "m.pt"), "--steps", "2", *argv)
    assert not (tmp_path / "out").exists()


def test_train_mapping_refuses_an_out_it_cannot_write(embedded, no_training, tmp_path):
    refused(f"--out: {tmp_path} is a folder; give the path of the file to write",
            "p2w_train_mapping", "--out", str(tmp_path), "--steps", "2")
    a_file = tmp_path / "file"
    a_file.write_text("")
    refused(f"--out: cannot write {a_file / 'm.pt'}: {a_file} is a file, not a folder",
            "p2w_train_mapping", "--out", str(a_file / "m.pt"), "--steps", "2")
    refused(f"--out: cannot write {a_file / 'sub' / 'm.pt'}: Not a directory",
            "p2w_train_mapping", "--out", str(a_file / "sub" / "m.pt"), "--steps", "2")
    refused("--out: cannot write /proc/nonexistent/m.pt: No such file or directory",
            "p2w_train_mapping", "--out", "/proc/nonexistent/m.pt", "--steps", "2")


def test_train_mapping_refuses_to_resume_what_is_no_checkpoint(embedded, no_training, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    refused(f"--resume: {junk} is not a mapping checkpoint (torch cannot load it)",
            "p2w_train_mapping", "--out", str(junk), "--steps", "2", "--resume")
    other = tmp_path / "other.pt"
    torch.save({"hello": 1}, other)
    refused(f"--resume: {other} is not a mapping checkpoint (it holds no mapping weights)",
            "p2w_train_mapping", "--out", str(other), "--steps", "2", "--resume")
    assert junk.read_bytes() == b"not a torch file"


def test_train_mapping_refuses_to_resume_a_checkpoint_of_another_clip(embedded, no_training, tmp_path):
    other = get_embedder("next").load()
    mapping = MappingNetwork(embed_dim=other.identity.dimensions, middle_dim=16,
                             output_dim=other.model.token_embedding.embedding_dim)
    out = tmp_path / "m.pt"
    save_mapping(mapping, out, clip_identity=other.identity, extra={"resume": {"step": 1, "optimizer_state": {}}})
    with pytest.raises(CommandError, match=f"^{re.escape(f'--resume: {out}: This mapping was trained for ')}"):
        call_command("p2w_train_mapping", "--out", str(out), "--steps", "2", "--resume")


DEMO_TRAINING = [
    (["--steps", "0"], "--steps: must be at least 1, not 0"),
    (["--lr", "nan"], "--lr: must be a finite number above 0, not nan"),
    (["--products", "0"], "--products: must be at least 1, not 0"),
    (["--variants", "0"], "--variants: must be at least 1, not 0"),
    (["--crops", "-1"], "--crops: must be at least 0, not -1"),
]


@pytest.mark.parametrize("argv, message", DEMO_TRAINING, ids=[" ".join(argv) for argv, _ in DEMO_TRAINING])
def test_train_demo_mapping_refuses_bad_settings_before_any_work(no_training, tmp_path, argv, message):
    refused(message, "train_demo_mapping", "--out", str(tmp_path / "m.pt"), "--products", "1", "--variants", "1",
            "--steps", "2", *argv)


# --- p2w_evaluate ----------------------------------------------------------------------------


@pytest.fixture
def cirr(tmp_path):
    path = tmp_path / "cap.rc2.test1.json"
    path.write_text("[]")
    return path


@pytest.mark.parametrize("field", ["nosuch", "merchant__nosuch"])
def test_evaluate_refuses_an_unknown_id_field(embedded, cirr, tmp_path, field):
    with pytest.raises(CommandError, match="^" + re.escape(
            f"--id-field {field!r}: Cannot resolve keyword 'nosuch' into field. Choices are: ")) as error:
        call_command("p2w_evaluate", "--cirr", str(cirr), "--id-field", field, "--out", str(tmp_path / "ev"))
    assert "\n" not in str(error.value)


def test_evaluate_refuses_a_file_without_triplets(embedded, cirr, tmp_path):
    refused(f"--cirr: {cirr} holds no triplets", "p2w_evaluate", "--cirr", str(cirr), "--out", str(tmp_path / "ev"))


def test_evaluate_refuses_a_negative_number_of_examples(embedded, cirr, tmp_path):
    refused("--examples: must be at least 0, not -1",
            "p2w_evaluate", "--cirr", str(cirr), "--examples", "-1", "--out", str(tmp_path / "ev"))


# --- load_demo_catalog ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--size", "-1"], "--size: must be at least 1, not -1"),
    (["--size", "0"], "--size: must be at least 1, not 0"),
    (["--images-per-product", "0"], "--images-per-product: must be at least 1, not 0"),
    (["--images-per-product", "40000"], "--images-per-product: must be at most 32768 (an image's position is a "
                                        "small integer), not 40000"),
], ids=["size -1", "size 0", "no images", "too many images"])
def test_load_demo_catalog_refuses_bad_sizes(db, media, monkeypatch, argv, message):
    from shop_demo.catalog import generator
    from shop_demo.catalog.models import Product

    def render(*args, **kwargs):
        raise AssertionError("rendering started")

    monkeypatch.setattr(generator, "render", render)
    refused(message, "load_demo_catalog", "--size", "1", *argv)
    assert not Product.objects.exists()
