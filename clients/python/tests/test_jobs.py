"""Jobs, apply, materialization and delete_keys (SPEC §6) against a real node."""

import datetime
import os
import unittest

from . import nodes
import featurelog

WS, SOURCE = "ads", "impressions_event_source"
SERVICE = "ad_ctr_feature_service_v2"
COUNT_1H = "user_click_counts.clicked_count_1h_continuous"

BATCH_WS = "pyclient_batch"
BATCH_REPO = """
workspace: pyclient_batch
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - name: clicks
    schema:
      - {name: user_id, type: String}
      - {name: timestamp, type: Timestamp}
      - {name: clicked, type: Int64}
    batch: {uri: %(csv)s, format: csv, timestamp_field: timestamp}
feature_views:
  - name: clicks_total
    source: clicks
    entities: [user]
    timestamp_field: timestamp
    feature_start_time: 2024-01-01T00:00:00Z
    features:
      - aggregate: {input: clicked, function: sum, window: lifetime}
feature_services:
  - {name: clicks_service, features: [clicks_total]}
"""
TOTAL = "clicks_total.clicked_sum_lifetime_continuous"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class JobsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fl = featurelog.Client(nodes.open_node().url, timeout=30)
        # A workspace whose source has batch files: applying it starts a backfill.
        d = nodes.tmpdir("batch")
        csv = os.path.join(d, "clicks.csv")
        with open(csv, "w") as f:
            f.write("user_id,timestamp,clicked\n")
            for day in range(1, 29):
                f.write("b1,2024-02-%02dT12:00:00Z,1\n" % day)
                f.write("b1,2024-03-%02dT12:00:00Z,10\n" % day)
        cls.repo = BATCH_REPO % {"csv": csv}
        cls.applied = cls.fl.apply(cls.repo, file="batch.yaml")

    def test_apply_starts_a_backfill_that_appears_in_jobs_and_completes(self):
        self.assertEqual(self.applied["workspace"], BATCH_WS)
        started = self.applied.get("jobs") or []
        self.assertEqual([j["type"] for j in started], ["backfill"])
        job = self.fl.wait_job(BATCH_WS, started[0]["id"], timeout=60)
        self.assertEqual(job["state"], "SUCCESS", job)
        listed = self.fl.jobs(BATCH_WS, feature_view="clicks_total", type="backfill")
        self.assertIn(job["id"], [j["id"] for j in listed])
        self.assertEqual(self.fl.get_job(BATCH_WS, job["id"])["state"], "SUCCESS")
        # the backfill loaded the batch rows: 28 days of 1, then 28 of 10
        rows = self.fl.get_features_for_events(BATCH_WS, "clicks_service", [
            {"user_id": "b1", "ts": "2024-03-01T00:00:00Z"}, {"user_id": "b1", "ts": "2024-04-01T00:00:00Z"}])
        self.assertEqual([r[TOTAL] for r in rows], [28, 308])
        # applying the same file again changes nothing and starts nothing
        self.assertFalse(self.fl.plan(self.repo, file="batch.yaml")["changed"])
        again = self.fl.apply(self.repo, file="batch.yaml")
        self.assertFalse(again["changed"])
        self.assertFalse(again.get("jobs"))
        # a bad file: 400 naming the file and line
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.plan(BATCH_REPO % {"csv": "no-such.csv"}, file="batch.yaml")
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("batch.yaml:", cm.exception.message)
        self.assertIn("no-such.csv does not exist", cm.exception.message)

    def test_materialization_then_overlap_is_409_naming_the_job(self):
        self.fl.wait_job(BATCH_WS, self.applied["jobs"][0]["id"], timeout=60)
        job = self.fl.materialize(BATCH_WS, "clicks_total", "2024-03-01T00:00:00Z", datetime.datetime(2024, 3, 15))
        self.assertEqual(job["type"], "materialization")
        self.assertIn(job["state"], ("PENDING", "RUNNING", "SUCCESS"))
        done = self.fl.wait_job(BATCH_WS, job["id"], timeout=60)
        self.assertEqual(done["state"], "SUCCESS", done)
        self.assertIn(job["id"], [j["id"] for j in self.fl.jobs(BATCH_WS, type="materialization")])
        # rows the backfill already loaded are not added twice
        rows = self.fl.get_features_for_events(BATCH_WS, "clicks_service", [{"user_id": "b1", "ts": "2024-04-01T00:00:00Z"}])
        self.assertEqual(rows[0][TOTAL], 308)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.materialize(BATCH_WS, "clicks_total", "2024-03-10T00:00:00Z", "2024-03-20T00:00:00Z")
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(cm.exception.job["id"], job["id"])
        self.assertIn(job["id"], cm.exception.message)

    def test_cancel(self):
        self.fl.wait_job(BATCH_WS, self.applied["jobs"][0]["id"], timeout=60)
        job = self.fl.materialize(BATCH_WS, "clicks_total", "2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z")
        try:
            cancelled = self.fl.cancel_job(BATCH_WS, job["id"])
            self.assertIn(cancelled["state"], ("MANUAL_CANCELLATION_REQUESTED", "CANCELLED"))
            final = self.fl.wait_job(BATCH_WS, job["id"], timeout=60)
            self.assertIn(final["state"], ("CANCELLED", "SUCCESS"))  # a job may finish before the request lands
        except featurelog.APIError as e:  # it finished before the cancel arrived
            self.assertEqual(e.status, 409)
            self.assertEqual(e.job["state"], "SUCCESS")
        # cancelling a finished job: 409 carrying the job, whose effects stay
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.cancel_job(BATCH_WS, self.applied["jobs"][0]["id"])
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(cm.exception.code, 9)
        self.assertEqual(cm.exception.job["state"], "SUCCESS")

    def test_delete_keys(self):
        gone, kept = nodes.unique_key(), nodes.unique_key()
        t = now() - datetime.timedelta(seconds=2)
        self.fl.ingest(WS, SOURCE, [{"user_id": gone, "timestamp": t, "clicked": 1},
                                    {"user_id": kept, "timestamp": t, "clicked": 1}])
        job = self.fl.delete_keys(WS, "user_click_counts", [{"user_id": gone}])
        self.assertEqual(job["type"], "deletion")
        done = self.fl.wait_job(WS, job["id"], timeout=60)
        self.assertEqual(done["state"], "SUCCESS", done)
        self.assertIn(job["id"], [j["id"] for j in self.fl.deletion_jobs(WS)])
        self.assertEqual(self.fl.get_features(WS, SERVICE, {"user_id": gone})[COUNT_1H], 0)
        self.assertEqual(self.fl.get_features(WS, SERVICE, {"user_id": kept})[COUNT_1H], 1)

    def test_a_failed_job_says_what_and_where(self):
        d = nodes.tmpdir("badbatch")
        csv = os.path.join(d, "bad.csv")
        with open(csv, "w") as f:
            f.write("user_id,timestamp,clicked\nb1,2024-03-01T12:00:00Z,10\nb1,2024-03-02T12:00:00Z,ten\n")
        repo = (BATCH_REPO % {"csv": csv}).replace("workspace: " + BATCH_WS, "workspace: pyclient_badbatch")
        started = self.fl.apply(repo, file="bad.yaml")["jobs"]
        job = self.fl.wait_job("pyclient_badbatch", started[0]["id"], timeout=60)  # no raise: the job is the answer
        self.assertEqual(job["state"], "FAILED")
        self.assertIn("bad.csv: line 3", job["error"])
        self.assertEqual(self.fl.jobs("pyclient_badbatch", state="FAILED")[0]["id"], job["id"])

    def test_job_errors(self):
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.get_job(WS, "job_nope")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, 5))
        self.assertIn('"job_nope"', cm.exception.message)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.delete_keys(WS, "user_click_counts", [{"customer": "x"}])
        self.assertEqual(cm.exception.status, 400)
        self.assertIn('join key "user_id"', cm.exception.message)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.delete_keys(WS, "no_such_view", [{"user_id": "x"}])
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.materialize(WS, "user_click_counts", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("no batch files", cm.exception.message)
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.jobs(WS, limit=0)
        self.assertEqual(cm.exception.status, 400)


if __name__ == "__main__":
    unittest.main()
