"""Historical retrieval (SPEC §5) and run (SPEC §6) against a real node."""

import datetime
import sys
import unittest

from . import nodes
import featurelog

WS, SOURCE, SERVICE = "ads", "impressions_event_source", "ad_ctr_feature_service_v2"
COUNT_1H = "user_click_counts.clicked_count_1h_continuous"
LAST = "click_events_fv.clicked"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class HistoricalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fl = featurelog.Client(nodes.open_node().url, timeout=30)
        # Two users with events one second apart, ending a second ago.
        cls.a, cls.b, cls.unseen = nodes.unique_key(), nodes.unique_key(), nodes.unique_key()
        base = now().replace(microsecond=0) - datetime.timedelta(seconds=6)  # whole seconds: RFC 3339 texts compare
        cls.times = [base + datetime.timedelta(seconds=i) for i in range(5)]
        recs = [{"user_id": cls.a, "timestamp": t, "clicked": i} for i, t in enumerate(cls.times)]
        recs += [{"user_id": cls.b, "timestamp": cls.times[2], "clicked": 9}]
        cls.fl.ingest(WS, SOURCE, recs)
        # Spine times between and on the events (a read at T sees events strictly before T).
        cls.spine_times = [cls.times[0], cls.times[0] + datetime.timedelta(milliseconds=500),
                           cls.times[2], cls.times[4] + datetime.timedelta(milliseconds=1)]

    def spine(self):
        rows = []
        for i, t in enumerate(self.spine_times):
            for user in (self.a, self.b, self.unseen):
                rows.append({"user_id": user, "ts": t, "label": i})
        return rows

    def test_rows_equal_online_reads_as_of_the_same_times(self):
        spine = self.spine()
        rows = self.fl.get_features_for_events(WS, SERVICE, spine, timestamp_key="ts")
        self.assertEqual(len(rows), len(spine))
        for given, row in zip(spine, rows):
            # the spine's columns as given, in spine order
            self.assertEqual({k: row[k] for k in given}, given)
            online = self.fl.get_features(WS, SERVICE, {"user_id": given["user_id"]}, as_of=given["ts"]).to_dict()
            self.assertEqual({k: row[k] for k in online}, online, "spine row %r" % given)
        # and the values are the expected ones, not just equal
        by = {(r["user_id"], r["label"]): r for r in rows}
        self.assertEqual(by[(self.a, 0)][COUNT_1H], 0)
        self.assertEqual(by[(self.a, 1)][COUNT_1H], 1)
        self.assertEqual(by[(self.a, 2)][COUNT_1H], 2)
        self.assertEqual(by[(self.a, 3)][COUNT_1H], 5)
        self.assertEqual(by[(self.a, 3)][LAST], 4)
        self.assertEqual(by[(self.b, 2)][LAST], None)
        self.assertEqual(by[(self.b, 3)][LAST], 9)
        self.assertEqual(by[(self.unseen, 3)][COUNT_1H], 0)

    def test_timestamp_key_inferred_and_from_source(self):
        spine = [{"user_id": self.a, "ts": t.isoformat()} for t in self.spine_times]
        tiles = self.fl.get_features_for_events(WS, SERVICE, spine)
        source = self.fl.get_features_for_events(WS, SERVICE, spine, from_source=True)
        self.assertEqual(tiles, source)
        self.assertEqual([r[COUNT_1H] for r in tiles], [0, 1, 2, 5])

    def test_large_spine_in_several_requests_keeps_order(self):
        spine = self.spine() * 20
        whole = self.fl.get_features_for_events(WS, SERVICE, spine, timestamp_key="ts")
        split = self.fl.get_features_for_events(WS, SERVICE, spine, timestamp_key="ts", max_request_bytes=2000)
        self.assertEqual(split, whole)

    def test_empty_spine(self):
        self.assertEqual(self.fl.get_features_for_events(WS, SERVICE, []), [])

    def test_range_mode(self):
        start, end = self.times[0] - datetime.timedelta(seconds=1), self.times[4] + datetime.timedelta(seconds=1)
        rows = self.fl.get_features_for_range(WS, SERVICE, start, end, entities=[{"user_id": self.b}])
        self.assertTrue(rows)
        self.assertTrue(all(r["user_id"] == self.b for r in rows))
        self.assertEqual(rows[0]["_valid_from"], featurelog.values.format_time(start))
        self.assertEqual(rows[-1][LAST], 9)

    def test_bad_spines(self):
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.get_features_for_events(WS, SERVICE, [{"customer": "x", "ts": now()}], timestamp_key="ts")
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual(cm.exception.code, 3)
        self.assertIn('"user_id"', cm.exception.message)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.get_features_for_events(WS, "no_such_service", [{"user_id": "x", "ts": now()}])
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.get_features_for_events(WS, SERVICE, [{"user_id": "x", "ts": "not a time"}], timestamp_key="ts")
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("params.spine[0]", cm.exception.message)

    def test_run_full_level(self):
        start, end = self.times[0], self.times[4] + datetime.timedelta(seconds=1)
        rows = self.fl.run(WS, "user_click_counts", start, end, level="full")
        mine = [r for r in rows if r["user_id"] == self.a]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["clicked_count_1h_continuous"], 5)
        mock = self.fl.run(WS, "user_click_counts", start, end, level="disabled",
                           mock_sources={SOURCE: [{"user_id": "m", "timestamp": self.times[1], "clicked": 3}]})
        self.assertEqual(len(mock), 1)
        self.assertEqual(mock[0]["user_id"], "m")
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.run(WS, "user_click_counts", start, end, level="nope")
        self.assertEqual(cm.exception.status, 400)


@unittest.skipUnless("pandas" in sys.modules or __import__("importlib").util.find_spec("pandas"), "pandas is not installed")
class DataFrameTest(unittest.TestCase):
    def test_dataframe_in_dataframe_out(self):
        import pandas as pd
        fl = featurelog.Client(nodes.open_node().url, timeout=30)
        user, t = nodes.unique_key(), now() - datetime.timedelta(seconds=3)
        fl.ingest(WS, SOURCE, [{"user_id": user, "timestamp": t, "clicked": 1}])
        spine = pd.DataFrame({"user_id": [user, user], "ts": pd.to_datetime([t, now()], utc=True), "label": [0, 1]},
                             index=[10, 11])
        out = fl.get_features_for_events(WS, SERVICE, spine, timestamp_key="ts")
        self.assertIsInstance(out, pd.DataFrame)
        self.assertEqual(list(out.columns[:3]), ["user_id", "ts", "label"])
        self.assertEqual(out[COUNT_1H].tolist(), [0, 1])
        self.assertEqual(str(out["ts"].dtype), str(spine["ts"].dtype))
        rows = fl.get_features_for_events(WS, SERVICE, spine.to_dict(orient="records"), timestamp_key="ts")
        self.assertEqual([r[COUNT_1H] for r in rows], [0, 1])


if __name__ == "__main__":
    unittest.main()
