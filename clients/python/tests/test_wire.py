"""The client's decoding of the node's wire formats, without a node: the
shapes that a real node produces only in rare conditions (errors after an
answer started, non-JSON error bodies)."""

import datetime
import io
import math
import unittest

from featurelog import APIError, values
from featurelog._http import Transport
from featurelog.errors import api_error
from featurelog.streams import ndjson_objects, sse_records


class StreamFormatsTest(unittest.TestCase):
    def test_ndjson_skips_heartbeats_and_raises_the_last_error_line(self):
        body = io.BytesIO(b'{"a": 1}\n\n{"a": 2}\n{"code": 10, "error": "log truncated", "message": "log truncated"}\n')
        got = []
        with self.assertRaises(APIError) as cm:
            for obj in ndjson_objects(body):
                got.append(obj)
        self.assertEqual(got, [{"a": 1}, {"a": 2}])
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.message), (200, 10, "log truncated"))

    def test_ndjson_row_with_more_members_is_data(self):
        body = io.BytesIO(b'{"code": 1, "error": "x", "message": "y", "v.f": "2"}\n')
        self.assertEqual(list(ndjson_objects(body)), [{"code": 1, "error": "x", "message": "y", "v.f": "2"}])

    def test_sse_records_comments_and_error_event(self):
        body = io.BytesIO(b": heartbeat\n\n"
                          b"id: 01\nevent: record\ndata: {\"offset\": \"01\"}\n\n"
                          b"id: 02\r\nevent: record\r\ndata: {\"offset\":\r\ndata: \"02\"}\r\n\r\n"
                          b"event: error\ndata: {\"code\": 16, \"error\": \"revoked\", \"message\": \"revoked\"}\n\n")
        got = []
        with self.assertRaises(APIError) as cm:
            for rec in sse_records(body):
                got.append(rec)
        self.assertEqual(got, [{"offset": "01"}, {"offset": "02"}])
        self.assertEqual((cm.exception.status, cm.exception.code), (200, 16))


class ErrorShapesTest(unittest.TestCase):
    def test_request_error(self):
        e = api_error(429, b'{"requestError": {"errorMessage": "saturated", "errorType": "ResourceExhausted"}}',
                      {"Retry-After": "1"})
        self.assertEqual((e.status, e.code, e.message, e.retry_after), (429, "ResourceExhausted", "saturated", 1.0))

    def test_serving_error(self):
        e = api_error(503, b'{"code": 14, "error": "view v is building", "message": "view v is building"}')
        self.assertEqual((e.status, e.code, e.message), (503, 14, "view v is building"))
        self.assertIn("HTTP 503: view v is building", str(e))

    def test_not_json(self):
        e = api_error(404, b"404 page not found\n")
        self.assertEqual((e.status, e.message, e.code), (404, "404 page not found", None))
        e = api_error(502, b"")
        self.assertEqual(e.message, "HTTP 502 with an empty body")


class TransportTest(unittest.TestCase):
    def test_targets_follow_the_base_path(self):
        t = Transport("http://127.0.0.1:9/featurelog/", timeout=1)
        self.assertEqual(t.path("/ingest", {"a": None, "from": "latest"}), "/featurelog/ingest?from=latest")
        self.assertEqual(t.url, "http://127.0.0.1:9/featurelog")
        self.assertEqual(Transport("localhost:8080").path("/healthz"), "/healthz")


class ValuesTest(unittest.TestCase):
    def test_times_out(self):
        self.assertEqual(values.format_time(datetime.datetime(2024, 5, 1, 12)), "2024-05-01T12:00:00Z")
        cet = datetime.timezone(datetime.timedelta(hours=2))
        self.assertEqual(values.format_time(datetime.datetime(2024, 5, 1, 14, tzinfo=cet)), "2024-05-01T12:00:00Z")
        self.assertEqual(values.to_json({"t": datetime.date(2024, 5, 1), "x": [float("nan"), 1.5]}),
                         {"t": "2024-05-01", "x": [None, 1.5]})

    def test_values_in(self):
        self.assertEqual(values.decode("9007199254740993", {"type": "int64"}), 9007199254740993)
        self.assertTrue(math.isnan(values.decode("NaN", {"type": "float64"})))
        self.assertEqual(values.decode("-Infinity", {"type": "float64"}), -math.inf)
        self.assertEqual(values.decode(["1", None], {"type": "array", "elementType": {"type": "int64"}}), [1, None])
        self.assertEqual(values.decode("2024-05-01T12:00:00.000000001Z", {"type": "timestamp"}),
                         "2024-05-01T12:00:00.000000001Z")


if __name__ == "__main__":
    unittest.main()
