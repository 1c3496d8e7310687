"""What the demo's web socket answers while the shop stops: a clean 503, never a reset connection.

While the web server finishes the requests in flight (circus stops it gracefully), new
connections still arrive on the listening socket, which circusd holds; without an answer
they would wait and be reset when the socket closes. This app takes them meanwhile
(shop_demo/supervision.py starts it first when the demo stops).
"""

import json

BODY = json.dumps({"detail": "The shop is stopping; try again in a minute."}).encode()


def application(environ, start_response):
    start_response("503 Service Unavailable", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(BODY))), ("Retry-After", "60"),
        ("Connection", "close"),
    ])
    return [BODY]
