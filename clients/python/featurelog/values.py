"""Conversions between Python values and the API's JSON encodings.

Going out, a datetime becomes an RFC 3339 string (a naive datetime is
taken as UTC), a date its ISO form, and anything with isoformat() (a
pandas Timestamp) its ISO form; numpy scalars become Python numbers.

Coming back (SPEC §4), served values are decoded by their data type:
int64 strings become int, the float strings "NaN", "Infinity" and
"-Infinity" become float, arrays are decoded element-wise. Timestamps
stay RFC 3339 strings: Python's datetime holds microseconds, and the
API's timestamps carry nanoseconds.
"""

import datetime
import math

_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def format_time(t):
    """Returns t (a datetime, or an RFC 3339 string) as an RFC 3339 string."""
    if isinstance(t, str):
        return t
    if isinstance(t, datetime.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=datetime.timezone.utc)
        t = t.astimezone(datetime.timezone.utc)
        return t.isoformat().replace("+00:00", "Z")
    if hasattr(t, "isoformat"):
        return to_json(t)
    raise TypeError("expected a datetime or an RFC 3339 string, got %r" % (t,))


def to_json(v):
    """Returns v with every value JSON can encode: datetimes as RFC 3339
    strings, numpy and pandas scalars as Python values, NaN of a pandas
    missing value as None."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if isinstance(v, datetime.datetime):
        return format_time(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    return _foreign(v)


def _foreign(v):
    """Converts numpy and pandas values by duck typing: the client imports
    neither."""
    if type(v).__name__ in ("NaTType", "NAType"):
        return None
    if hasattr(v, "tz_convert") and hasattr(v, "isoformat"):  # pandas.Timestamp
        if v.tzinfo is None:
            v = v.tz_localize("UTC")
        return v.tz_convert("UTC").isoformat().replace("+00:00", "Z")
    if hasattr(v, "tolist"):  # numpy scalars and arrays
        return to_json(v.tolist())
    if hasattr(v, "isoformat"):
        return v.isoformat()
    raise TypeError("cannot send a value of type %s as JSON: %r" % (type(v).__name__, v))


def decode(v, data_type):
    """Decodes a served value by its data type ({"type": "int64"},
    {"type": "array", "elementType": {...}}); unknown types pass as they
    came."""
    if v is None or not isinstance(data_type, dict):
        return v
    kind = data_type.get("type")
    if kind in ("int64", "int32") and isinstance(v, str):
        return int(v)
    if kind in ("float64", "float32") and isinstance(v, str):
        return _FLOAT_WORDS.get(v, v)
    if kind == "array" and isinstance(v, list):
        elem = data_type.get("elementType")
        return [decode(x, elem) for x in v]
    return v
