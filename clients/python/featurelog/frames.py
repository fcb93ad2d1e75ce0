"""pandas support, without importing pandas unless a DataFrame is given."""

import sys


def is_frame(obj):
    """Reports whether obj is a pandas DataFrame (pandas already imported
    by the caller, so it is never imported here for nothing)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def rows(frame):
    """The DataFrame's rows as dicts of column name to value."""
    return frame.to_dict(orient="records")


def join(spine, features, answer):
    """Returns a copy of the spine DataFrame, its index reset, with a column
    per feature (features: the answer's columns) from the answer rows."""
    import pandas as pd
    out = spine.reset_index(drop=True).copy()
    data = {c["name"]: [row.get(c["name"]) for row in answer] for c in features}
    return pd.concat([out, pd.DataFrame(data, columns=[c["name"] for c in features])], axis=1)
