"""What recording search health costs a search: the same searches with and without it, side by side.

Two measurements, each against its baseline in the same run (the machine is shared and noisy):

1. In this process: microseconds per ``search_health.record`` call (what a search pays: its
   counts added to the process's dict), with the demo's cache (Django's RedisCache on the
   benchmark's Redis) and a LocMemCache, against the call with recording off
   (``SEARCH_HEALTH_CACHE`` None); and per ``search_health.flush`` of one second's counts
   (what the flusher thread pays once a second: one pipelined round trip on Redis).
2. Searches over REST: two web servers from the Procfile's gunicorn line on one database,
   one as deployed (recording into Redis) and one with recording off
   (``bench/settings_no_search_health.py``); rounds alternate between them. The endpoint is
   "more like this" (``/api/search/similar/``): no query encoding, the cheapest search, so
   a fixed cost per request weighs the most there.

    bench/run search_health               # python -m bench.search_health --help for the options
"""

import argparse
import statistics
import threading
import time

import numpy as np

from bench import _service
from bench.report import markdown_table, percentiles, write_results

NAME = "search_health"
OFF_SETTINGS = "bench.settings_no_search_health"
WARMUP = 50  # unmeasured searches before each measured run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=2000, help="products in the catalog")
    parser.add_argument("--calls", type=int, default=20_000, help="record() calls per round and store")
    parser.add_argument("--searches", type=int, default=300, help="searches per round and server")
    parser.add_argument("--rounds", type=int, default=8, help="rounds; each measures both servers, order alternating")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="concurrent clients")
    args = parser.parse_args(argv)
    workdir = _service.bench_database(NAME)

    from p2w_search import indexing

    model = indexing.register_model()
    rng = np.random.default_rng(0)
    catalog(model, args.products, rng)
    started = time.monotonic()
    calls = measure_calls(args.calls, args.rounds)
    runs = []
    with _service.Procfile(workdir / "logs") as shop:
        shop.web()
        servers = {"on": shop.base_url}
        shop.web(env={"DJANGO_SETTINGS_MODULE": OFF_SETTINGS})
        servers["off"] = shop.base_url
        for clients in args.clients:
            print(f"{clients} client(s)", flush=True)
            runs.append(measure_searches(servers, clients, args.searches, args.rounds, rng))
    data = {
        "setup": {"products": args.products, "calls": args.calls, "searches": args.searches,
                  "rounds": args.rounds, "clients": args.clients, "model": model.key, "cores": _service.cpu_count(),
                  "wall_s": time.monotonic() - started},
        "calls": calls, "runs": runs,
    }
    print(write_results(NAME, data, report(data)).read_text())


def catalog(model, size, rng):
    """``size`` products with one ready image each (random unit vectors; the ranking's cost, not its quality)."""
    from bench.query_latency import grow_catalog
    from shop_demo.catalog import generator

    metadata = generator.generate_products(200, seed=0)
    seeds = rng.standard_normal((len(metadata), model.dimensions)).astype(np.float32)
    grow_catalog(model, seeds, metadata, size, noise=0.3, rng=rng)


def measure_calls(calls, rounds):
    """Median microseconds per ``record()`` call and per ``flush()`` into each store, over ``rounds``."""
    from django.conf import settings
    from django.test import override_settings

    from p2w_search import search_health

    caches = {**settings.CACHES, "bench-locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    stores = {"redis": "default", "locmem": "bench-locmem", "off": None}
    timings = {"encode": 0.0, "sql": 3.1, "serialize": 4.2, "total": 9.8}  # a similar search's phases
    rng = np.random.default_rng(1)
    per_call = {name: [] for name in stores}
    per_flush = {name: [] for name in stores}
    with override_settings(CACHES=caches):
        for _ in range(rounds):
            for name, alias in stores.items():
                with override_settings(P2W_SEARCH={**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": alias}):
                    search_health.flush()
                    started = time.perf_counter()
                    for _ in range(calls):
                        search_health.record("similar", 200, timings)
                    per_call[name].append((time.perf_counter() - started) / calls * 1e6)
                    search_health.flush()
                    # One second of a busy process: 100 searches with latencies spread over a few bins.
                    flushes = 200
                    spent = 0.0
                    for _ in range(flushes):
                        for ms in rng.lognormal(np.log(10), 0.5, size=100):
                            search_health.record("similar", 200, {"sql": ms / 3, "serialize": ms / 3, "total": ms})
                        started = time.perf_counter()
                        search_health.flush()
                        spent += time.perf_counter() - started
                    per_flush[name].append(spent / flushes * 1e6)
        recorded = {}
        for name, alias in stores.items():
            with override_settings(P2W_SEARCH={**settings.P2W_SEARCH, "SEARCH_HEALTH_CACHE": alias}):
                found = search_health.summary()["windows"][60].get("similar")
                recorded[name] = found["requests"] if found else 0
    result = {name: {"record_us": statistics.median(per_call[name]), "flush_us": statistics.median(per_flush[name]),
                     "record_rounds_us": per_call[name], "flush_rounds_us": per_flush[name],
                     "recorded": recorded[name]} for name in stores}
    print("per record(): " + ", ".join(f"{name} {value['record_us']:.1f} us" for name, value in result.items())
          + "; per flush(): " + ", ".join(f"{name} {value['flush_us']:.0f} us" for name, value in result.items()),
          flush=True)
    return result


def measure_searches(servers, clients, searches, rounds, rng):
    """Latencies of ``searches`` similar searches per round on each server, the order alternating by round."""
    from p2w_search import search_health
    from shop_demo.catalog.models import Product

    ids = np.asarray(Product.objects.values_list("pk", flat=True))
    before = _recorded(search_health)
    samples = {name: [] for name in servers}
    ratios = []
    for number in range(rounds):
        order = list(servers) if number % 2 == 0 else list(reversed(servers))
        medians = {}
        for name in order:
            workload = [int(pk) for pk in rng.choice(ids, size=searches)]
            latencies = run(servers[name], workload, clients, warmup=WARMUP)
            samples[name] += latencies
            medians[name] = statistics.median(latencies)
        ratios.append(medians["on"] / medians["off"])
    time.sleep(3 * search_health.FLUSH_SECONDS)  # the web processes' last counts reach Redis
    recorded = _recorded(search_health) - before
    result = {"clients": clients, "recorded": recorded, "sent_to_on": rounds * (searches + WARMUP),
              "round_ratios_p50": ratios}
    for name, latencies in samples.items():
        result[name] = {**percentiles(latencies), "mean": 1000 * float(np.mean(latencies)), "n": len(latencies)}
    result["ratio_p50"] = result["on"]["p50"] / result["off"]["p50"]
    result["ratio_p95"] = result["on"]["p95"] / result["off"]["p95"]
    result["ratio_mean"] = result["on"]["mean"] / result["off"]["mean"]
    print(f"  p50 on {result['on']['p50']:.2f} ms, off {result['off']['p50']:.2f} ms: ratio {result['ratio_p50']:.3f};"
          f" recorded {recorded} of {result['sent_to_on']} sent to the recording server", flush=True)
    return result


def _recorded(search_health):
    found = search_health.summary()["windows"][60].get("similar")
    return found["requests"] if found else 0


def run(base_url, workload, clients, *, warmup):
    """Seconds of each search of ``workload`` (after ``warmup`` unmeasured ones), from ``clients`` threads."""
    import requests

    url = f"{base_url}/api/search/similar/"
    samples, errors, lock = [], [], threading.Lock()

    def client(mine, record):
        session = requests.Session()
        for product in mine:
            started = time.perf_counter()
            response = session.get(url, params={"product": product, "k": 20}, timeout=30)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:200]}")
            elif record:
                with lock:
                    samples.append(elapsed)

    client(workload[:warmup], record=False)
    threads = [threading.Thread(target=client, args=(workload[i::clients], True)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} searches failed, e.g. {errors[0]}")
    return samples


def report(data):
    setup = data["setup"]
    calls = data["calls"]
    lines = [
        "# The cost of recording search health",
        "",
        f"In one process, median of {setup['rounds']} rounds: `search_health.record()` per call ({setup['calls']} "
        "calls with a similar search's phases: what a search pays), and `search_health.flush()` per call after "
        "100 searches (what the flusher thread pays once a second per web process); `off`: recording turned off.",
        "",
        markdown_table(["store", "us per record()", "us per flush() of 100 searches", "answers recorded (last hour)"],
                       [[name, value["record_us"], value["flush_us"], value["recorded"]]
                        for name, value in calls.items()]),
        "",
        f"`GET /api/search/similar/?product=...&k=20` over REST on {setup['products']} products: two gunicorn "
        "servers from the Procfile on one database, one recording into Redis (as deployed) and one with recording "
        f"off; {setup['rounds']} rounds of {setup['searches']} searches on each (order alternating), each after {WARMUP} "
        "unmeasured ones.",
        "",
        markdown_table(
            ["clients", "p50 on ms", "p50 off ms", "p50 on / off", "p95 on ms", "p95 off ms", "p95 on / off",
             "mean on / off", "per-round p50 ratios", "recorded / sent"],
            [[run["clients"], run["on"]["p50"], run["off"]["p50"], run["ratio_p50"], run["on"]["p95"],
              run["off"]["p95"], run["ratio_p95"], run["ratio_mean"],
              " ".join(f"{r:.3f}" for r in run["round_ratios_p50"]), f"{run['recorded']} / {run['sent_to_on']}"]
             for run in data["runs"]]),
        "",
        "The per-round ratios show the noise of this shared machine: a difference inside their spread is no cost "
        "that this run can see.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
