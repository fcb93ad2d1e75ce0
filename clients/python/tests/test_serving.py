"""Ingest and online serving against a real node (SPEC §2, §4)."""

import datetime
import unittest

from . import nodes
import featurelog

WS, SOURCE = "ads", "impressions_event_source"
SERVICE = "ad_ctr_feature_service_v2"  # click_events_fv.clicked, then user_click_counts' four aggregates
COUNT_1H = "user_click_counts.clicked_count_1h_continuous"
SQUARES = "user_click_counts.clicked_squared_sum_1d_continuous"
LAST = "click_events_fv.clicked"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class ServingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = nodes.open_node()
        cls.fl = featurelog.Client(cls.node.url, timeout=30)

    def test_health_and_ready(self):
        self.assertEqual(self.fl.health(), {"status": "ok"})
        self.assertEqual(self.fl.ready()["status"], "ready")

    def test_ingest_then_get_features_returns_the_values(self):
        user, t = nodes.unique_key(), now() - datetime.timedelta(seconds=5)
        res = self.fl.ingest(WS, SOURCE, [
            {"user_id": user, "timestamp": t, "clicked": 2},
            {"user_id": user, "timestamp": t + datetime.timedelta(seconds=1), "clicked": 3},
        ])
        self.assertEqual(res.workspace, WS)
        self.assertFalse(res.replayed)
        self.assertEqual(res.metrics["user_click_counts"], {"online": 2, "offline": 2})
        self.assertEqual(res.metrics["click_events_fv"], {"online": 2, "offline": 2})

        vec = self.fl.get_features(WS, SERVICE, {"user_id": user})
        self.assertEqual(vec[LAST], 3)
        self.assertEqual(vec[COUNT_1H], 2)
        self.assertEqual(vec[SQUARES], 13.0)  # 2**2 + 3**2
        self.assertEqual(vec.statuses, ["PRESENT"] * 5)
        self.assertEqual(vec.data_types[0], {"type": "int64"})
        self.assertEqual(vec.raw[1], "2")  # int64 travels as a string
        self.assertEqual(list(vec.to_dict()), vec.names)
        self.assertEqual(vec.names[0], LAST)

    def test_one_record_and_as_of(self):
        user, t = nodes.unique_key(), now() - datetime.timedelta(seconds=10)
        self.fl.ingest(WS, SOURCE, {"user_id": user, "timestamp": t.isoformat(), "clicked": 7})
        self.assertEqual(self.fl.get_features(WS, SERVICE, {"user_id": user})[LAST], 7)
        before = self.fl.get_features(WS, SERVICE, {"user_id": user}, as_of=t)  # strictly before t: not seen
        self.assertIsNone(before[LAST])
        self.assertEqual(before.statuses[0], "MISSING_DATA")
        self.assertEqual(before[COUNT_1H], 0)

    def test_dry_run_writes_nothing(self):
        user = nodes.unique_key()
        res = self.fl.ingest(WS, SOURCE, {"user_id": user, "timestamp": now(), "clicked": 1}, dry_run=True)
        self.assertEqual(res.metrics["click_events_fv"], {"online": 1, "offline": 1})
        self.assertEqual(self.fl.get_features(WS, SERVICE, {"user_id": user})[COUNT_1H], 0)

    def test_idempotency_key_replays_the_first_answer(self):
        user, key = nodes.unique_key(), nodes.unique_key("idem")
        rec = {"user_id": user, "timestamp": now(), "clicked": 1}
        first = self.fl.ingest(WS, SOURCE, rec, idempotency_key=key)
        again = self.fl.ingest(WS, SOURCE, rec, idempotency_key=key)
        self.assertFalse(first.replayed)
        self.assertTrue(again.replayed)
        self.assertEqual(again.raw, first.raw)
        self.assertEqual(self.fl.get_features(WS, SERVICE, {"user_id": user})[COUNT_1H], 1)

    def test_get_features_batch_in_request_order(self):
        a, b, unseen = nodes.unique_key(), nodes.unique_key(), nodes.unique_key()
        t = now() - datetime.timedelta(seconds=2)
        self.fl.ingest(WS, SOURCE, [{"user_id": a, "timestamp": t, "clicked": 1},
                                    {"user_id": b, "timestamp": t, "clicked": 4},
                                    {"user_id": b, "timestamp": t, "clicked": 5}])
        vecs = self.fl.get_features_batch(WS, SERVICE, [{"user_id": b}, {"user_id": unseen}, {"user_id": a}])
        self.assertEqual([v[COUNT_1H] for v in vecs], [2, 0, 1])
        self.assertEqual([v[LAST] for v in vecs], [5, None, 1])
        self.assertEqual(vecs[1].statuses[0], "MISSING_DATA")
        self.assertEqual(vecs[0].names, vecs[2].names)
        single = self.fl.get_features(WS, SERVICE, {"user_id": b})
        self.assertEqual(vecs[0].to_dict(), single.to_dict())

    def test_get_features_batch_over_the_node_limit(self):
        user = nodes.unique_key()
        self.fl.ingest(WS, SOURCE, {"user_id": user, "timestamp": now(), "clicked": 1})
        keys = [{"user_id": user}] * (featurelog.MAX_BATCH + 3)
        vecs = self.fl.get_features_batch(WS, SERVICE, keys)
        self.assertEqual(len(vecs), len(keys))
        self.assertTrue(all(v[COUNT_1H] == 1 for v in vecs))

    def test_feature_view_summary(self):
        fv = self.fl.feature_view(WS, "user_click_counts")
        self.assertEqual(fv["name"], "user_click_counts")
        self.assertEqual(fv["join_keys"], ["user_id"])


class ServingErrorsTest(unittest.TestCase):
    """Bad inputs raise APIError with the node's status and message."""

    @classmethod
    def setUpClass(cls):
        cls.node = nodes.open_node()
        cls.fl = featurelog.Client(cls.node.url, timeout=30)

    def assertAPIError(self, status, fn, code=None, contains=None):
        with self.assertRaises(featurelog.APIError) as cm:
            fn()
        e = cm.exception
        self.assertEqual(e.status, status, str(e))
        if code is not None:
            self.assertEqual(e.code, code)
        if contains is not None:
            self.assertIn(contains, e.message)
        self.assertIsInstance(e, Exception)
        return e

    def test_bad_records_list_every_record(self):
        user = nodes.unique_key()
        e = self.assertAPIError(400, lambda: self.fl.ingest(WS, SOURCE, [
            {"user_id": user, "timestamp": now(), "clicked": "x"},
            {"user_id": user, "timestamp": now(), "clicked": 1},
            {"user_id": user, "timestamp": "yesterday", "clicked": 1},
        ]), code="TectonObjectValidationError")
        self.assertEqual([r["recordIndex"] for r in e.record_errors], [0, 2])
        # the message is the node's, exactly: each record's errorMessage
        self.assertEqual(e.message, "; ".join(r["errorMessage"] for r in e.body["recordErrors"]))
        self.assertIn('expected Int64, got the string "x"', e.message)
        # atomic: nothing of the request was written
        self.assertEqual(self.fl.get_features(WS, SERVICE, {"user_id": user})[COUNT_1H], 0)

    def test_unknown_workspace_and_source(self):
        rec = {"user_id": "u", "timestamp": now(), "clicked": 1}
        e = self.assertAPIError(404, lambda: self.fl.ingest("no_such_ws", SOURCE, rec), code="NotFound")
        self.assertEqual(e.message, e.body["requestError"]["errorMessage"])
        self.assertIn('"no_such_ws"', e.message)
        self.assertAPIError(404, lambda: self.fl.ingest(WS, "no_such_source", rec), code="NotFound", contains="no_such_source")

    def test_unknown_service_and_bad_join_keys(self):
        e = self.assertAPIError(404, lambda: self.fl.get_features(WS, "no_such_service", {"user_id": "u"}), code=5)
        self.assertEqual(e.message, e.body["message"])
        self.assertIn('"no_such_service"', e.message)
        self.assertAPIError(404, lambda: self.fl.get_features("no_such_ws", SERVICE, {"user_id": "u"}), code=5)
        self.assertAPIError(400, lambda: self.fl.get_features(WS, SERVICE, {"customer": "u"}), code=3)
        self.assertAPIError(400, lambda: self.fl.get_features_batch(WS, SERVICE, [{"user_id": "u"}, {}]), code=3)
        self.assertAPIError(404, lambda: self.fl.feature_view(WS, "no_such_view"), code=5)

    def test_as_of_in_the_future(self):
        later = now() + datetime.timedelta(hours=1)
        self.assertAPIError(400, lambda: self.fl.get_features(WS, SERVICE, {"user_id": "u"}, as_of=later), code=3)

    def test_connection_refused(self):
        fl = featurelog.Client("http://127.0.0.1:%d" % nodes.free_port(), timeout=5)
        with self.assertRaises(featurelog.ClientConnectionError) as cm:
            fl.get_features(WS, SERVICE, {"user_id": "u"})
        self.assertIn("is the node running", str(cm.exception))
        self.assertIsInstance(cm.exception, featurelog.Error)
        self.assertIsInstance(cm.exception, ConnectionError)

    def test_bad_url(self):
        with self.assertRaises(ValueError):
            featurelog.Client("ftp://example.com")


if __name__ == "__main__":
    unittest.main()
