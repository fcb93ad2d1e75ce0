"""featurelog: a Python client of a featurelog node's HTTP API.

Standard library only; pandas DataFrames are accepted and returned by
get_features_for_events when pandas is installed.

    import featurelog

    fl = featurelog.Client("http://127.0.0.1:8080", api_key="...")
    fl.ingest("ads", "impressions_event_source",
              {"user_id": "C18947Z5", "timestamp": datetime.now(timezone.utc), "clicked": 1})
    vec = fl.get_features("ads", "ad_ctr_feature_service", {"user_id": "C18947Z5"})
    vec.to_dict()   # {"click_events_fv.clicked": 1}

    rows = fl.get_features_for_events("ads", "ad_ctr_feature_service",
                                      [{"user_id": "C18947Z5", "ts": "2026-01-02T00:00:00Z"}])

    with fl.output_stream("ads", "user_click_counts", start="latest") as stream:
        for record in stream:
            print(record["entity_keys"], record["feature_values"], record["offset"])

Errors: APIError (the node's HTTP status, message and code) and
ClientConnectionError, both featurelog.Error.
"""

from .client import FINAL_STATES, MAX_BATCH, Client
from .errors import APIError, ClientConnectionError, Error
from .streams import OutputStream
from .vectors import FeatureVector, IngestResult

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "Client",
    "ClientConnectionError",
    "Error",
    "FeatureVector",
    "FINAL_STATES",
    "IngestResult",
    "MAX_BATCH",
    "OutputStream",
]
