"""The HTTP transport: one http.client connection per request.

A fresh connection per request keeps retries out of the picture: a
keep-alive connection the node closed while idle fails a POST in a way
that cannot tell whether the node received it, and an ingest without an
Idempotency-Key must not be sent twice.
"""

import http.client
import json
import socket
import urllib.parse

from .errors import ClientConnectionError, api_error

USER_AGENT = "featurelog-python"


class Transport:
    """Sends requests to one node.

    Attributes:
        base: the parsed base URL.
        api_key: sent as "Authorization: Tecton-key <key>" when set.
        timeout: seconds to connect and for each read of an answer.
    """

    def __init__(self, url, api_key=None, timeout=60.0):
        base = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if base.scheme not in ("http", "https"):
            raise ValueError("featurelog: url %r must be http:// or https://" % url)
        if not base.hostname:
            raise ValueError("featurelog: url %r names no host" % url)
        self.base = base
        self.api_key = api_key
        self.timeout = timeout

    @property
    def url(self):
        return urllib.parse.urlunsplit((self.base.scheme, self.base.netloc, self.base.path.rstrip("/"), "", ""))

    @property
    def origin(self):
        """scheme://host:port, which request targets (path()) follow."""
        return self.base.scheme + "://" + self.base.netloc

    def _connection(self, timeout):
        cls = http.client.HTTPSConnection if self.base.scheme == "https" else http.client.HTTPConnection
        return cls(self.base.hostname, self.base.port, timeout=timeout)

    def path(self, path, query=None):
        """Returns the request target: the base URL's path, path and the
        query (a dict; None values are left out)."""
        target = self.base.path.rstrip("/") + path
        if query:
            q = {k: v for k, v in query.items() if v is not None}
            if q:
                target += "?" + urllib.parse.urlencode(q)
        return target

    def open(self, method, path, body=None, headers=None, timeout=None):
        """Sends a request and returns (connection, response) once the
        status line and headers arrived. The caller reads the response and
        closes the connection. An error status raises APIError; a failure
        to connect or send raises ClientConnectionError."""
        hdrs = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if self.api_key:
            hdrs["Authorization"] = "Tecton-key " + self.api_key
        hdrs.update(headers or {})
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            if resp.status >= 300:
                raw = resp.read()
                raise api_error(resp.status, raw, resp.headers, method, self.origin + path)
            return conn, resp
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise self.connection_error(method, path, e) from e
        except BaseException:
            conn.close()
            raise

    def connection_error(self, method, path, e):
        if isinstance(e, socket.timeout):
            what = "no answer within %ss" % self.timeout
        else:
            what = "%s: %s" % (type(e).__name__, e)
        return ClientConnectionError("featurelog: %s %s%s failed: %s (is the node running and reachable at %s?)"
                                     % (method, self.origin, path, what, self.url))

    def call(self, method, path, payload=None, query=None, headers=None):
        """Sends a JSON request and returns (status, headers, parsed JSON
        answer)."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        target = self.path(path, query)
        conn, resp = self.open(method, target, body, headers)
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise self.connection_error(method, target, e) from e
        finally:
            conn.close()
        if not raw:
            return resp.status, resp.headers, None
        return resp.status, resp.headers, json.loads(raw.decode("utf-8"))
