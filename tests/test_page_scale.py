"""What the pages read on a large shop (bench/pages.py measures it): their queries stay as many when rows are
added, and their aggregates read an index, not the embedding rows (a kilobyte of vector each).

No timing: a query count, or the planner's choice on the tables with sequential scans off (the choice
it makes on a table of years of rows, not of the few a test writes).
"""

from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from p2w_search import indexing, status
from p2w_search.models import EmbeddingModel, ImageEmbedding, ImportJob, ProductImage
from shop_demo.catalog.models import Product
from tests.factories import ProductFactory, token_client

READY, FAILED, PENDING = ImageEmbedding.State.READY, ImageEmbedding.State.FAILED, ImageEmbedding.State.PENDING
DONE = ImportJob.State.DONE


@pytest.fixture
def serving(transactional_db):
    return EmbeddingModel.objects.create(alias="default", architecture="ViT-B-32", weights="test", dimensions=4,
                                         state=EmbeddingModel.State.SERVING)


def images_of(merchant, count, *, model, states=(READY, PENDING, FAILED)):
    """``count`` product images of ``merchant`` (rows only: no page here reads their files), with embedding rows."""
    products = Product.objects.bulk_create(ProductFactory.build(merchant=merchant) for _ in range(count))
    images = ProductImage.objects.bulk_create(ProductImage(product=product, file=f"p2w/images/{product.sku}.png",
                                                           sha256="0" * 64) for product in products)
    ImageEmbedding.objects.bulk_create(
        ImageEmbedding(image=image, model=model, state=states[n % len(states)],
                       vector=[0.5] * model.dimensions if states[n % len(states)] == READY else None,
                       norm=1.0 if states[n % len(states)] == READY else None)
        for n, image in enumerate(images))
    return images


def add_jobs(merchant, count, *, model, owner=None, final=False):
    """``count`` ended jobs of ``merchant``, each with images of its own (still embedding, unless ``final``)."""
    for _ in range(count):
        job = ImportJob.objects.create(owner=owner, merchant_key=str(merchant.pk), state=DONE,
                                       manifest="p2w/imports/catalog.csv")
        job.images.set(images_of(merchant, 3, model=model))
        if final:
            job.final_counts = {"images_total": 3, "images_embedded": 1, "images_failed": 1}
            job.save(update_fields=["final_counts"])


def queries(get):
    with CaptureQueriesContext(connection) as captured:
        response = get()
    assert response.status_code == 200, response.content[:500]
    return len(captured.captured_queries)


def vacuum(*tables):
    """VACUUM ANALYZE (outside a transaction: the test's database is a transactional_db)."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


@contextmanager
def seq_scans_off(*tables):
    """The planner's choice on tables of a real shop's size: statistics read, sequential scans off."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
        cursor.execute("SET enable_seqscan = off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")


def test_the_jobs_list_of_the_admin_counts_the_images_of_a_page_at_once(admin_client, acme, serving):
    """Each job still embedding counted its images in three queries of its own: 300 on a page of 100 jobs."""
    add_jobs(acme, 2, model=serving)
    first = queries(lambda: admin_client.get("/admin/p2w_search/importjob/"))
    add_jobs(acme, 5, model=serving)
    response = admin_client.get("/admin/p2w_search/importjob/")
    assert queries(lambda: admin_client.get("/admin/p2w_search/importjob/")) == first
    assert response.content.decode().count("<td class=\"field-embedded_images\">1 / 3</td>") == 7


def test_the_jobs_list_of_the_admin_reads_their_owners_with_the_jobs(admin_client, acme, serving, django_user_model):
    """An owner may be null, which Django's own select_related() of a list leaves out: a query per job."""
    for n in range(2):
        add_jobs(acme, 1, model=serving, owner=django_user_model.objects.create_user(f"owner{n}"), final=True)
    first = queries(lambda: admin_client.get("/admin/p2w_search/importjob/"))
    for n in range(2, 7):
        add_jobs(acme, 1, model=serving, owner=django_user_model.objects.create_user(f"owner{n}"), final=True)
    assert queries(lambda: admin_client.get("/admin/p2w_search/importjob/")) == first


def test_a_merchants_uploads_page_counts_the_images_of_a_page_at_once(client, acme, serving):
    """As the admin's list: a page of 20 uploads still embedding made 60 queries for their counts."""
    client.force_login(acme.user)
    add_jobs(acme, 2, model=serving)
    first = queries(lambda: client.get("/merchant/imports/"))
    add_jobs(acme, 5, model=serving)
    assert queries(lambda: client.get("/merchant/imports/")) == first


def test_the_apis_list_of_uploads_counts_the_images_of_a_page_at_once(acme, serving, django_user_model):
    """Staff see every merchant's uploads there: 84 queries for a page of 20 on the bench's shop."""
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_importjob"))
    api = token_client(staff)
    add_jobs(acme, 2, model=serving)
    first = queries(lambda: api.get("/api/imports/"))
    add_jobs(acme, 5, model=serving)
    response = api.get("/api/imports/")
    assert queries(lambda: api.get("/api/imports/")) == first
    assert [(job["images_total"], job["images_embedded"]) for job in response.json()["results"]] == [(3, 1)] * 7


def test_a_jobs_counts_from_a_list_are_those_it_counts_alone(acme, serving):
    """What a list reads at once for each job is what its own poll answers, and is stored once nothing is pending."""
    from p2w_search.uploads.progress import image_counts, prefetch_image_counts

    add_jobs(acme, 3, model=serving)
    alone = {job.pk: image_counts(job) for job in ImportJob.objects.all()}
    listed = {job.pk: image_counts(job) for job in prefetch_image_counts(ImportJob.objects.all())}
    assert listed == alone
    assert all(counts == {"images_total": 3, "images_embedded": 1, "images_failed": 1} for counts in alone.values())
    ImageEmbedding.objects.filter(state=PENDING).update(state=FAILED)
    jobs = prefetch_image_counts(ImportJob.objects.all())
    assert [image_counts(job) for job in jobs] == [{"images_total": 3, "images_embedded": 1, "images_failed": 2}] * 3
    assert ImportJob.objects.filter(final_counts__images_failed=2).count() == 3  # stored: the next polls read it


def test_a_models_progress_is_counted_from_an_index_not_from_its_rows(transactional_db, acme, serving):
    """The index page, p2w_index status and doctor counted each model's rows by state reading every row and its
    vector: the whole table, twice with a second model."""
    clip = EmbeddingModel.objects.create(alias="next", architecture="ViT-B-16", weights="test", dimensions=512)
    images_of(acme, 3000, model=clip, states=(READY, READY, FAILED))  # a ready row holds a kilobyte of vector
    vacuum("p2w_search_imageembedding", "p2w_search_productimage")  # rows as old as a real shop's: all visible
    with CaptureQueriesContext(connection) as captured:
        indexing.model_progress(clip)
    counted = next(q["sql"] for q in captured.captured_queries if "GROUP BY" in q["sql"])
    with seq_scans_off("p2w_search_imageembedding", "p2w_search_productimage"):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + counted)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Only Scan using p2w_emb_model_state_image on p2w_search_imageembedding" in plan, plan


def test_the_last_errors_are_read_from_an_index_of_the_failed_rows(transactional_db, acme, serving):
    """The index page's last errors scanned every embedding row for the few that failed, and sorted them all."""
    images_of(acme, 3000, model=serving, states=(READY, READY, FAILED))
    vacuum("p2w_search_imageembedding")
    with CaptureQueriesContext(connection) as captured:
        status.index_status()
    newest = next(q["sql"] for q in captured.captured_queries
                  if "ORDER BY" in q["sql"] and "\"p2w_search_imageembedding\".\"state\" = 'failed'" in q["sql"])
    with seq_scans_off("p2w_search_imageembedding"):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + newest)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "p2w_emb_failed_newest" in plan and "Sort" not in plan, plan


def test_the_index_status_counts_the_images_in_the_index_once_per_model(acme, serving):
    """The images in the index were counted once more for the page's first line: the count each model's progress
    makes (a scan of every product image)."""
    EmbeddingModel.objects.create(alias="next", architecture="ViT-L-14", weights="test", dimensions=4)
    images_of(acme, 4, model=serving)
    with CaptureQueriesContext(connection) as captured:
        current = status.index_status()
    counts = [q for q in captured.captured_queries
              if q["sql"].startswith('SELECT COUNT(*) AS "__count" FROM "p2w_search_productimage"')]
    assert len(counts) == 2, counts  # one per model
    assert current["images"] == 4 == ProductImage.objects.filter(in_index=True).count()


def test_the_index_status_counts_the_images_without_a_model(db):
    assert status.index_status()["images"] == 0
