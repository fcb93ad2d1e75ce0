"""Output streams (SPEC §7) against a real node."""

import datetime
import itertools
import unittest

from . import nodes
import featurelog

WS, SOURCE, VIEW = "ads", "impressions_event_source", "user_click_counts"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class OutputStreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fl = featurelog.Client(nodes.open_node().url, timeout=30)

    def ingest(self, user, *clicks):
        t = now().replace(microsecond=0) - datetime.timedelta(seconds=1)
        self.fl.ingest(WS, SOURCE, [{"user_id": user, "timestamp": t, "clicked": c} for c in clicks])
        return t

    def mine(self, stream, user, n):
        """The next n records of user's key; other tests' records are skipped.
        reconnect=False and a read timeout make a missing record fail, not hang."""
        return list(itertools.islice((r for r in stream if r["entity_keys"] == {"user_id": user}), n))

    def check_latest(self, sse):
        user = nodes.unique_key()
        with self.fl.output_stream(WS, VIEW, start="latest", sse=sse, reconnect=False, read_timeout=20) as stream:
            # ingested after the stream opened, before iteration starts
            t = self.ingest(user, 1, 3)
            recs = self.mine(stream, user, 2)
        self.assertEqual(len(recs), 2)
        self.assertEqual(recs[0]["feature_view_name"], VIEW)
        self.assertEqual(recs[0]["feature_values"]["clicked_count_1h_continuous"], "1")
        self.assertEqual(recs[1]["feature_values"]["clicked_count_1h_continuous"], "2")
        self.assertEqual(recs[1]["feature_values"]["clicked_squared_sum_1d_continuous"], "10")
        self.assertEqual(recs[0]["feature_timestamp"], featurelog.values.format_time(t))
        self.assertLess(recs[0]["offset"], recs[1]["offset"])
        self.assertEqual(stream.last_offset, recs[1]["offset"])

    def test_latest_ndjson_yields_records_ingested_after_it_opened(self):
        self.check_latest(sse=False)

    def test_latest_sse_yields_records_ingested_after_it_opened(self):
        self.check_latest(sse=True)

    def test_from_offset_and_resume_after(self):
        user = nodes.unique_key()
        with self.fl.output_stream(WS, VIEW, start="latest", reconnect=False, read_timeout=20) as stream:
            self.ingest(user, 1, 1, 1)
            recs = self.mine(stream, user, 3)
        offsets = [r["offset"] for r in recs]
        for sse in (False, True):
            # from=OFFSET starts at that record, inclusive
            with self.fl.output_stream(WS, VIEW, start=offsets[1], sse=sse, reconnect=False, read_timeout=20) as s:
                self.assertEqual([r["offset"] for r in itertools.islice(s, 2)], offsets[1:])
            # after=OFFSET (Last-Event-ID) resumes right after it
            with self.fl.output_stream(WS, VIEW, after=offsets[0], sse=sse, reconnect=False, read_timeout=20) as s:
                self.assertEqual([r["offset"] for r in itertools.islice(s, 2)], offsets[1:])
        # earliest starts at the first record the log retains: before ours
        with self.fl.output_stream(WS, VIEW, start="earliest", reconnect=False, read_timeout=20) as s:
            first = next(iter(s))
        self.assertLessEqual(first["offset"], offsets[0])

    def test_refusals_raise_when_opened(self):
        cases = [
            ("click_events_fv", "latest", 404, "has no output stream"),
            ("no_such_view", "latest", 404, '"no_such_view"'),
            (VIEW, "bogus", 400, "not valid"),
        ]
        for view, start, status, text in cases:
            with self.subTest(view=view, start=start):
                with self.assertRaises(featurelog.APIError) as cm:
                    self.fl.output_stream(WS, view, start=start)
                self.assertEqual(cm.exception.status, status)
                self.assertIn(text, cm.exception.message)
                self.assertEqual(cm.exception.message, cm.exception.body["message"])
        with self.assertRaises(featurelog.APIError) as cm:
            self.fl.output_stream("no_such_ws", VIEW)
        self.assertEqual(cm.exception.status, 404)

    def test_reconnects_after_a_broken_connection_without_repeats(self):
        user = nodes.unique_key()
        stream = self.fl.output_stream(WS, VIEW, start="latest", read_timeout=20)
        stream._sleep = lambda s: None
        opens = []
        reopen = stream._open
        stream._open = lambda: (opens.append(stream.last_offset), reopen())
        try:
            self.ingest(user, 1)
            it = (r for r in stream if r["entity_keys"] == {"user_id": user})
            first = next(it)
            stream._conn.sock.close()  # the connection breaks under the reader
            stream._resp.close()
            self.ingest(user, 1)
            second = next(it)
        finally:
            stream.close()
        self.assertEqual(first["feature_values"]["clicked_count_1h_continuous"], "1")
        self.assertEqual(second["feature_values"]["clicked_count_1h_continuous"], "2")
        self.assertGreater(second["offset"], first["offset"])
        self.assertEqual(opens, [first["offset"]])  # one reconnection, resuming after the first record


if __name__ == "__main__":
    unittest.main()
