"""Listing the catalog against a real node (SPEC §8)."""

import unittest
from datetime import datetime, timezone

from . import nodes
import featurelog


class ListingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = nodes.open_node()
        cls.fl = featurelog.Client(cls.node.url, timeout=30)

    def test_workspaces_views_and_services(self):
        ads = [w for w in self.fl.workspaces() if w["name"] == "ads"]
        self.assertEqual(ads, [{"name": "ads", "sources": 1, "feature_views": 2, "feature_services": 2}])
        self.assertEqual([v["name"] for v in self.fl.feature_views("ads")], ["user_click_counts", "click_events_fv"])
        services = self.fl.feature_services("ads")
        self.assertEqual([s["name"] for s in services], ["ad_ctr_feature_service", "ad_ctr_feature_service_v2"])
        v2 = self.fl.feature_service("ads", "ad_ctr_feature_service_v2")
        self.assertEqual(v2, services[1])
        self.assertEqual(v2["join_keys"], [{"name": "user_id", "dataType": {"type": "string"}}])
        self.assertEqual(v2["features"][0], {"name": "click_events_fv.clicked", "dataType": {"type": "int64"}})
        self.assertIsNone(v2["unavailable"])

    def test_metadata(self):
        meta = self.fl.feature_service_metadata("ads", "ad_ctr_feature_service_v2")
        self.assertEqual(meta["featureServiceType"], "DEFAULT")
        self.assertEqual(meta["inputJoinKeys"], [{"name": "user_id", "dataType": {"type": "string"}}])
        self.assertEqual([f["featureViewName"] for f in meta["featureValues"]],
                         ["click_events_fv"] + ["user_click_counts"] * 4)

    def test_view_definitions_and_ingest_rate(self):
        view = self.fl.feature_view("ads", "user_click_counts")
        self.assertEqual(view["transformation"], {"columns": {"clicked_squared": "clicked ** 2"}, "filter": None})
        self.assertEqual(view["feature_definitions"][0], {"name": "clicked_count_1h_continuous", "dataType": {"type": "int64"},
                                                          "function": "count", "column": "clicked", "time_window": "1h"})
        self.assertEqual([v["serving"] for v in view["versions"]], [True])
        self.assertEqual(set(view["storage"]), {"segments", "segment_bytes", "memtable_records", "memtable_bytes"})

        before = self.fl.ingest_rate("ads", "user_click_counts", minutes=1440)
        self.fl.ingest("ads", "impressions_event_source",
                       [{"user_id": "rate-py", "timestamp": datetime.now(timezone.utc), "clicked": 1}] * 3)
        after = self.fl.ingest_rate("ads", "user_click_counts", minutes=1440)
        self.assertEqual(after["interval_seconds"], 60)
        self.assertEqual(len(after["points"]), 1440)
        self.assertTrue(after["points"][-1]["start"].endswith(":00Z"), after["points"][-1])
        self.assertGreaterEqual(sum(p["records"] for p in after["points"]) - sum(p["records"] for p in before["points"]), 3)
        self.assertEqual(len(self.fl.ingest_rate("ads", "user_click_counts")["points"]), 60)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.ingest_rate("ads", "user_click_counts", minutes=0)
        self.assertEqual(cm.exception.status, 400)
        self.assertIn('minutes="0"', cm.exception.message)

    def test_unknown_names_are_refused(self):
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.feature_service("ads", "nope")
        self.assertEqual(cm.exception.status, 404)
        self.assertIn("nope", cm.exception.message)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.feature_views("no_such_workspace")
        self.assertEqual(cm.exception.status, 404)
        self.assertIn("no_such_workspace", cm.exception.message)


if __name__ == "__main__":
    unittest.main()
