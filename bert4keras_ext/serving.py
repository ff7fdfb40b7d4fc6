"""bert4keras's `WebServing`: a small JSON web API around Python functions, on the standard
library's threading HTTP server (bert4keras used bottle, https://github.com/bojone/bert4keras).

Each route maps a path and method to a function and declares its arguments as
`{name: (converter, required)}`; a request's query string (GET) or urlencoded form (POST)
supplies them as strings, converted by `converter` (None keeps the string). Answers are JSON,
as bert4keras's: `{"code": 0, "desc": "succeeded", "data": result}` on success, code 1 with
HTTP 400 for a missing or malformed argument (404 / 405 for an unknown path or method), code 2
with HTTP 500 when the function raises (the server keeps serving). bert4keras answered every
error with HTTP 200; the codes in the body are the same.
"""
import http.server
import json
import logging
import threading
import urllib.parse

import numpy as np

logger = logging.getLogger(__name__)

_METHODS = ("GET", "POST")


class WebServing:
    """A JSON web API: `route` functions, then `start()`.

    `host` and `port` are where it listens (port 0: a free port, readable from `port` once
    started). `server` is accepted for bert4keras's signature (it chose a bottle back end);
    the standard library's threading server is always used. Functions run one at a time
    (a Keras model is not guaranteed to be safe to call from several threads at once).

    Example:
    ```python
    def synonyms(text, n=10):
        return gen_synonyms(text)[:n]

    web = WebServing(port=8864)
    web.route("/gen_synonyms", synonyms, {"text": (None, True), "n": (int, False)})
    web.start()  # then open http://127.0.0.1:8864/gen_synonyms?text=你好
    ```
    """

    def __init__(self, host="0.0.0.0", port=8000, server="paste"):
        self.host, self.port, self.server = host, port, server
        self.routes = {}  # (method, path) -> (func, arguments)
        self._call_lock = threading.Lock()
        self._httpd = None
        self._thread = None

    def route(self, path, func, arguments, method="GET"):
        """Serves `func(**arguments)` at `path` for `method` ('GET' or 'POST')."""
        method = method.upper() if isinstance(method, str) else method
        if method not in _METHODS:
            raise ValueError(f"`method` must be 'GET' or 'POST'; received {method!r}.")
        if not callable(func):
            raise TypeError(f"`func` must be callable; received {func!r}.")
        for name, spec in arguments.items():
            if not (isinstance(spec, (tuple, list)) and len(spec) == 2
                    and (spec[0] is None or callable(spec[0]))):
                raise ValueError(f"`arguments[{name!r}]` must be (converter or None, required); "
                                 f"received {spec!r}.")
        self.routes[(method, path)] = (func, dict(arguments))

    def start(self, blocking=True):
        """Listens and serves until `stop()` (or Ctrl-C when `blocking`); `blocking=False`
        serves from a background thread and returns once listening."""
        handler = type("Handler", (_Handler,), {"serving": self})
        httpd = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd, self.port = httpd, httpd.server_address[1]
        logger.info("Serving on http://%s:%d", self.host, self.port)
        if not blocking:
            self._thread = threading.Thread(target=httpd.serve_forever,
                                            name=f"WebServing:{self.port}", daemon=True)
            self._thread.start()
            return
        try:
            httpd.serve_forever()
        finally:
            httpd.server_close()

    def stop(self, timeout=10.0):
        """Stops serving and frees the port (from another thread than a blocking `start`)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._httpd = self._thread = None

    def respond(self, method, path, parameters):
        """`(HTTP status, JSON body)` for a request; `parameters` maps names to strings."""
        route = self.routes.get((method, path))
        if route is None:
            if any(known == path for _, known in self.routes):
                return 405, _answer(1, f"{path} does not accept {method}")
            return 404, _answer(1, f"no route for {path}")
        func, arguments = route
        kwargs = {}
        for name, (converter, required) in arguments.items():
            if name not in parameters:
                if required:
                    return 400, _answer(1, f'lack of "{name}" argument')
                continue
            raw = parameters[name]
            try:
                kwargs[name] = raw if converter is None else converter(raw)
            except Exception as error:  # any converter's complaint is the client's error
                expected = getattr(converter, "__name__", repr(converter))
                return 400, _answer(1, f'argument "{name}" must be {expected}; received '
                                       f'{raw!r} ({error})')
        try:
            with self._call_lock:
                result = func(**kwargs)
            body = _answer(0, "succeeded", result)
            json.dumps(body, default=_jsonable)  # a result JSON cannot hold fails here
        except Exception as error:
            logger.exception("%s %s failed", method, path)
            return 500, _answer(2, str(error) or type(error).__name__)
        return 200, body


def _answer(code, desc, data=None):
    return {"code": code, "desc": desc, "data": {} if data is None else data}


def _jsonable(value):
    """NumPy arrays and scalars as lists and numbers."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"the result holds a {type(value).__name__}, which JSON cannot hold")


class _Handler(http.server.BaseHTTPRequestHandler):
    serving = None  # the WebServing, set on the per-server subclass
    timeout = 30  # seconds a client may take to send its request

    def do_GET(self):  # noqa: N802  (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        self._reply("GET", url.path, url.query)

    def do_POST(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode("utf-8", errors="replace")
        self._reply("POST", url.path, form)

    def _reply(self, method, path, query):
        fields = urllib.parse.parse_qs(query, keep_blank_values=True)
        parameters = {name: values[0] for name, values in fields.items()}
        status, body = self.serving.respond(method, path, parameters)
        payload = json.dumps(body, ensure_ascii=False, default=_jsonable).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002  (http.server's signature)
        logger.info("%s %s", self.address_string(), format % args)
