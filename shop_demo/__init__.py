import atexit
import gc

from shop_demo.celery import app as celery_app

# A process that loaded the CLIP spends about 2 s of its exit in the interpreter's last garbage
# collections, over objects the operating system frees anyway. Frozen, they are skipped: a
# worker, a web process or a manage.py command of the demo stops in 0.4 s instead
# (bench/results/exit.md), so restarts and one-shot commands end sooner. The atexit handlers
# registered before this one, logging's flush among them, still run after it (last in, first out).
atexit.register(gc.freeze)

__all__ = ["celery_app"]
