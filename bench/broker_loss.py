"""The time from a Redis restart that loses its messages to an upload's images embedded, with the demo's sweep
(every 60 s, SWEEP_AFTER 300 s), with the broker's marker (``dispatch.lost_messages``) and as before it.

Not part of the suite, nor of ``bench/run`` (it needs the test session's fixtures: a real worker, beat, a Redis of
its own without persistence, killed while the worker is inside the first of three batches). Run by hand, about
7 minutes for both:

    P2W_VAR_DIR=$PWD/var/bench-broker bin/test bench/broker_loss.py -p tests.conftest -s

It prints ``MEASURED after: ... s`` and ``MEASURED before: ... s``; "before" writes the marker back into the
restarted Redis at once, as the last sweep left it, and records the new Redis's run id beside it in PostgreSQL
(``BrokerMarker``), so that the sweep is the one it was before the marker. bench/results/broker_loss.md
has the figures measured.
"""

import time

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from p2w_search import dispatch, indexing, tasks
from p2w_search.models import BrokerMarker, ImageEmbedding, ImportJob
from tests.conftest import wait_for
from tests.factories import MerchantFactory, catalog_upload
from tests.faults import Beat, RedisServer, celery_broker

pytestmark = pytest.mark.django_db(transaction=True)
PART = {"TEE-1": ["tee-1.png"], "TEE-2": ["tee-2.png", "tee-2b.png"], "MUG-1": ["mug-1.png"],
        "MUG-2": ["mug-2.png", "mug-2b.png"], "CAP-1": ["cap-1.png"], "CAP-2": ["cap-2.png"]}  # 8 images, 3 tasks


@pytest.mark.timeout(900)  # "before" waits for SWEEP_AFTER (300 s) and a sweep: longer than the suite's 300 s
@pytest.mark.parametrize("mode", ["after", "before"])
def test_measure(mode, start_worker, tmp_path, tmp_path_factory, test_database_url, django_user_model):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    env = {"DJANGO_SETTINGS_MODULE": "tests.fault_settings", "P2W_TEST_TASK_BATCH_SIZE": "3",
           "P2W_TEST_BACKEND": "tests.slow_embedder.SlowOpenCLIPEmbedder", "P2W_TEST_EMBED_DELAY": "3",
           "REDIS_URL": server.url, "DATABASE_URL": test_database_url,
           "P2W_SWEEP_AFTER": "300", "P2W_SWEEP_EVERY": "60"}
    with celery_broker(server.url):
        beat = Beat(env, log_dir=tmp_path)
        try:
            start_worker(env=env)
            indexing.register_model()
            tasks.sweep_pending()  # a sweep ran before: the marker is there
            merchant = MerchantFactory(user=django_user_model.objects.create_user("acme"))
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=merchant.user).key}")
            catalog_upload(client, PART)
            wait_for(lambda: ImageEmbedding.objects.filter(attempts=1).count() == 3, message="first batch started")
            server.crash()
            server.start()
            restarted = time.monotonic()
            if mode == "before":  # the marker back at once, as the last sweep left it: the sweep of before the marker
                forget_the_loss(server.client())
            wait_for(lambda: ImageEmbedding.objects.filter(state="ready").count() == 8
                     and ImportJob.objects.filter(state="done").count() == 1, timeout=600, interval=1,
                     message="all embedded")
            print(f"\nMEASURED {mode}: {time.monotonic() - restarted:.1f} s from the restart to 8 images ready")
        finally:
            beat.stop()
            server.stop()


def forget_the_loss(client):
    """Make the restarted Redis look like the one the last sweep wrote to: its generation, and its run id recorded."""
    marker = BrokerMarker.objects.get(key=dispatch.marker_key())
    client.set(marker.key, str(marker.generation))
    BrokerMarker.objects.filter(pk=marker.pk).update(redis_run_id=client.info("server")["run_id"])
