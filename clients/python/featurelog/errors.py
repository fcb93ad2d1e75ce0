"""Errors raised by the featurelog client.

Every failure the client reports is a featurelog.Error:

- APIError: the node answered with an error. It carries the HTTP status,
  the node's message exactly as the API states it, and the error's code
  (the gRPC code of the serving API, or the ingest API's errorType).
- ClientConnectionError: the node could not be reached, or the
  connection failed before an answer arrived (also a built-in
  ConnectionError).
"""

import json


class Error(Exception):
    """Base class of every error the featurelog client raises."""


class APIError(Error):
    """The node answered with an error.

    Attributes:
        status: the HTTP status (200 for an error that ended a response
            already streaming: a historical join, a run, an output stream).
        message: the node's message, exactly as the API states it. For an
            ingest request refused for bad records, the errorMessage of
            each record, joined with "; " (see record_errors).
        code: the serving API's gRPC code (an int: 3 invalid argument,
            5 not found, 7 permission denied, 16 unauthenticated, ...) or
            the ingest API's errorType (a str: "RequestValidationError",
            "NotFound", "Unauthenticated", ...); None when the body had
            neither.
        record_errors: for a 400 from ingest naming bad records, the
            list of {"featureViewName", "pushSourceName", "recordIndex",
            "errorType", "errorMessage"} objects; else [].
        job: for a 409 from the jobs API, the job in the way; else None.
        retry_after: the Retry-After header in seconds (429, 503), or None.
        body: the response body, parsed JSON when it was JSON, else text.
    """

    def __init__(self, status, message, code=None, body=None, record_errors=None,
                 job=None, retry_after=None, method=None, url=None):
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        self.record_errors = record_errors or []
        self.job = job
        self.retry_after = retry_after
        self.method = method
        self.url = url
        super().__init__(message)

    def __str__(self):
        where = ""
        if self.url:
            where = " (%s%s)" % (self.method + " " if self.method else "", self.url)
        return "HTTP %d: %s%s" % (self.status, self.message, where)


class ClientConnectionError(Error, ConnectionError):
    """The node could not be reached or the connection broke."""


def _retry_after(headers):
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def api_error(status, raw, headers=None, method=None, url=None):
    """Builds the APIError of an error response from its raw body bytes.

    The API has three error shapes (SPEC §2, §4):
      {"requestError": {"errorMessage", "errorType"}}       ingest
      {"workspaceName", "recordErrors": [...]}              ingest, bad records
      {"code", "error", "message"[, "job"]}                 everything else
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    ra = _retry_after(headers)
    if isinstance(body, dict):
        err = _from_object(status, body, ra, method, url)
        if err is not None:
            return err
    message = text.strip() or "HTTP %d with an empty body" % status
    return APIError(status, message, body=body if body is not None else text,
                    retry_after=ra, method=method, url=url)


def _from_object(status, body, retry_after, method, url):
    req = body.get("requestError")
    if isinstance(req, dict):
        return APIError(status, req.get("errorMessage", ""), code=req.get("errorType"),
                        body=body, retry_after=retry_after, method=method, url=url)
    recs = body.get("recordErrors")
    if isinstance(recs, list):
        message = "; ".join(str(r.get("errorMessage", "")) for r in recs if isinstance(r, dict))
        code = recs[0].get("errorType") if recs and isinstance(recs[0], dict) else None
        return APIError(status, message, code=code, body=body, record_errors=recs,
                        retry_after=retry_after, method=method, url=url)
    if "message" in body or "error" in body:
        message = body.get("message", body.get("error"))
        return APIError(status, str(message), code=body.get("code"), body=body,
                        job=body.get("job"), retry_after=retry_after, method=method, url=url)
    return None


def is_error_line(obj):
    """Reports whether a streamed NDJSON object is the error that ends a
    historical, run or output-stream answer: exactly {"code", "error",
    "message"}. No data row has that shape: an output record never has
    "code", and a historical or run row carries at least one feature
    column, whose name ("<view>.<feature>") is none of these.
    """
    return isinstance(obj, dict) and set(obj) == {"code", "error", "message"}
