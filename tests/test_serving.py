"""`WebServing`: a real HTTP server on 127.0.0.1 (an ephemeral port), answered as bert4keras's
JSON; bad requests and failing functions do not stop it; `stop()` frees the port and threads."""
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

from bert4keras_ext.snippets import WebServing

TIMEOUT = 5  # seconds for any request: a hang fails the test instead of blocking the suite


def repeat(text, n=2):
    if text == "boom":
        raise RuntimeError("cannot repeat boom")
    return {"text": text * n, "lengths": np.array([len(text)] * n)}


def request(port, path, query=None, form=None):
    """(HTTP status, decoded JSON) of a GET (query) or POST (urlencoded form)."""
    url = f"http://127.0.0.1:{port}{path}"
    if query is not None:
        url += "?" + urllib.parse.urlencode(query)
    data = None if form is None else urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode("utf-8"))


@pytest.fixture(scope="module")
def server():
    web = WebServing(host="127.0.0.1", port=0)
    web.route("/repeat", repeat, {"text": (None, True), "n": (int, False)})
    web.route("/repeat", repeat, {"text": (None, True), "n": (int, True)}, method="POST")
    web.start(blocking=False)
    yield web
    web.stop()


def test_good_requests_get_bert4keras_answers(server):
    status, body = request(server.port, "/repeat", {"text": "你好", "n": "3"})
    assert status == 200
    assert body == {"code": 0, "desc": "succeeded",
                    "data": {"text": "你好你好你好", "lengths": [2, 2, 2]}}
    assert request(server.port, "/repeat", {"text": "ab"})[1]["data"]["text"] == "abab"
    assert request(server.port, "/repeat", form={"text": "x", "n": "4"})[1]["data"]["text"] == (
        "xxxx")


def test_bad_requests_get_4xx_naming_the_argument_and_the_server_keeps_serving(server):
    status, body = request(server.port, "/repeat", {"n": "3"})
    assert (status, body) == (400, {"code": 1, "desc": 'lack of "text" argument', "data": {}})
    status, body = request(server.port, "/repeat", {"text": "a", "n": "three"})
    assert status == 400 and body["code"] == 1
    assert body["desc"].startswith('argument "n" must be int; received \'three\'')
    assert request(server.port, "/repeat", form={"text": "a"})[0] == 400  # n required on POST
    assert request(server.port, "/nowhere", {"text": "a"})[0] == 404
    status, body = request(server.port, "/repeat", {"text": "boom"})
    assert (status, body) == (500, {"code": 2, "desc": "cannot repeat boom", "data": {}})
    assert request(server.port, "/repeat", {"text": "ok", "n": "1"}) == (
        200, {"code": 0, "desc": "succeeded", "data": {"text": "ok", "lengths": [2]}})


def test_route_refuses_bad_declarations():
    web = WebServing()
    with pytest.raises(ValueError, match="`method` must be 'GET' or 'POST'; received 'PUT'"):
        web.route("/x", repeat, {}, method="PUT")
    with pytest.raises(ValueError, match="`arguments\\['n'\\]` must be \\(converter or None, "
                                         "required\\); received 'int'"):
        web.route("/x", repeat, {"n": "int"})


def test_blocking_start_serves_until_stop_and_frees_port_and_threads():
    before = set(threading.enumerate())
    web = WebServing(host="127.0.0.1", port=0)
    web.route("/repeat", repeat, {"text": (None, True)})
    runner = threading.Thread(target=web.start)  # start() blocks, as bert4keras's
    runner.start()
    for _ in range(500):  # wait (at most 5 s) until it listens
        if web.port:
            break
        threading.Event().wait(0.01)
    assert request(web.port, "/repeat", {"text": "z"})[1]["data"]["text"] == "zz"
    web.stop()
    runner.join(TIMEOUT)
    assert not runner.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web.port), timeout=TIMEOUT).close()
    for _ in range(500):  # request threads end right after their answer
        if set(threading.enumerate()) <= before:
            break
        threading.Event().wait(0.01)
    assert set(threading.enumerate()) <= before
