"""API keys against a node serving with auth (SPEC §2, §8): keys made with
the CLI on the data directory before it serves."""

import datetime
import re
import unittest

from . import nodes
import featurelog

WS, SOURCE, SERVICE, VIEW = "ads", "impressions_event_source", "ad_ctr_feature_service_v2", "user_click_counts"
COUNT_1H = "user_click_counts.clicked_count_1h_continuous"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = nodes.auth_node()
        cls.owner, cls.editor, cls.viewer = (featurelog.Client(cls.node.url, api_key=cls.node.keys[r], timeout=30)
                                             for r in ("owner", "editor", "viewer"))
        cls.anonymous = featurelog.Client(cls.node.url, timeout=30)
        cls.wrong = featurelog.Client(cls.node.url, api_key="fl_0000000000000000_not-a-key", timeout=30)

    def record(self, user):
        return {"user_id": user, "timestamp": now(), "clicked": 1}

    def assertStatus(self, status, code, fn):
        with self.assertRaises(featurelog.APIError) as cm:
            fn()
        self.assertEqual((cm.exception.status, cm.exception.code), (status, code), str(cm.exception))
        return cm.exception

    def test_roles(self):
        user = nodes.unique_key()
        self.editor.ingest(WS, SOURCE, self.record(user))
        self.owner.ingest(WS, SOURCE, self.record(user))
        self.assertEqual(self.viewer.get_features(WS, SERVICE, {"user_id": user})[COUNT_1H], 2)
        self.assertTrue(self.viewer.jobs(WS))
        # the viewer may read but not write
        e = self.assertStatus(403, "PermissionDenied", lambda: self.viewer.ingest(WS, SOURCE, self.record(user)))
        self.assertEqual(e.message, e.body["requestError"]["errorMessage"])
        self.assertIn("lacks the editor role", e.message)
        e = self.assertStatus(403, 7, lambda: self.viewer.delete_keys(WS, VIEW, [{"user_id": user}]))
        self.assertIn("owner role", e.message)
        self.assertStatus(403, 7, lambda: self.editor.delete_keys(WS, VIEW, [{"user_id": user}]))
        job = self.owner.delete_keys(WS, VIEW, [{"user_id": user}])
        self.assertEqual(self.owner.wait_job(WS, job["id"], timeout=60)["state"], "SUCCESS")
        self.assertStatus(403, 7, lambda: self.viewer.cancel_job(WS, job["id"]))

    def test_wrong_or_missing_key_is_401(self):
        for name, fl in (("wrong key", self.wrong), ("no key", self.anonymous)):
            with self.subTest(name):
                e = self.assertStatus(401, "Unauthenticated", lambda: fl.ingest(WS, SOURCE, self.record("x")))
                self.assertEqual(e.message, e.body["requestError"]["errorMessage"])
                e = self.assertStatus(401, 16, lambda: fl.get_features(WS, SERVICE, {"user_id": "x"}))
                self.assertEqual(e.message, e.body["message"])
                self.assertStatus(401, 16, lambda: fl.get_features_batch(WS, SERVICE, [{"user_id": "x"}]))
                self.assertStatus(401, 16, lambda: fl.get_features_for_events(WS, SERVICE, [{"user_id": "x", "ts": now()}]))
                self.assertStatus(401, 16, lambda: fl.jobs(WS))
                self.assertStatus(401, 16, lambda: fl.output_stream(WS, VIEW))
        e = self.assertStatus(401, 16, lambda: self.wrong.get_features(WS, SERVICE, {"user_id": "x"}))
        self.assertEqual(e.message, "invalid API key: it is unknown or has been revoked")
        e = self.assertStatus(401, 16, lambda: self.anonymous.get_features(WS, SERVICE, {"user_id": "x"}))
        self.assertIn("missing API key", e.message)

    def test_health_needs_no_key(self):
        self.assertEqual(self.anonymous.health()["status"], "ok")
        self.assertEqual(self.anonymous.ready()["status"], "ready")

    def test_viewer_reads_the_output_stream(self):
        user = nodes.unique_key()
        with self.viewer.output_stream(WS, VIEW, reconnect=False, read_timeout=20) as stream:
            self.editor.ingest(WS, SOURCE, self.record(user))
            rec = next(r for r in stream if r["entity_keys"] == {"user_id": user})
        self.assertEqual(rec["feature_values"]["clicked_count_1h_continuous"], "1")

    def test_revoked_key_ends_a_started_stream_with_the_nodes_error(self):
        for sse in (False, True):
            with self.subTest(sse=sse):
                owner = ["--server", self.node.url, "--api-key", self.node.keys["owner"]]
                out = nodes.cli("service-account", "create", "--name", nodes.unique_key("revoked"), *owner)
                key = re.search(r"API Key: (\S+)", out).group(1)
                ident = re.search(r"Service Account ID: (\S+)", out).group(1)
                nodes.cli("access-control", "assign-role", "--role", "viewer", "--workspace", WS, "--service-account", ident, *owner)
                fl = featurelog.Client(self.node.url, api_key=key, timeout=30)
                user = nodes.unique_key()
                with fl.output_stream(WS, VIEW, sse=sse, read_timeout=20) as stream:
                    self.editor.ingest(WS, SOURCE, self.record(user))
                    it = (r for r in stream if r["entity_keys"] == {"user_id": user})
                    self.assertEqual(next(it)["entity_keys"], {"user_id": user})
                    nodes.cli("service-account", "delete", "--service-account", ident, *owner)
                    self.editor.ingest(WS, SOURCE, self.record(user))  # the next write checks the key again
                    with self.assertRaises(featurelog.APIError) as cm:
                        next(it)
                e = cm.exception
                self.assertEqual((e.status, e.code), (200, 16))  # the stream had started: the error is its last message
                self.assertEqual(e.message, "invalid API key: it is unknown or has been revoked")
                self.assertEqual(e.message, e.body["message"])


if __name__ == "__main__":
    unittest.main()
