// Package tabular writes historical results to files (package tabread
// reads the spines), in three formats chosen by the file's extension:
// Parquet (.parquet), CSV (.csv) and JSON Lines (.jsonl or .ndjson). It is the file side of `featurelog historical` (SPEC §5).
//
//	f, _ := os.Open("spine.csv")
//	spine, err := tabread.OpenSpine("spine.csv", f)
//	out, _ := os.Create("training.parquet")
//	w, err := tabular.CreateWriter("training.parquet", out)
//	err = db.GetFeaturesForEvents(ctx, req, spine, w)
//	err = w.Close() // writes the parquet footer; out stays open
//
// Spine values reach the engine as plain Go values:
//
//	format   string        number              bool  timestamp        null
//	CSV      string        string              string string          "" (empty cell)
//	JSONL    string        int64 or float64    bool  string           null or absent
//	Parquet  string        int64 or float64    bool  time.Time        null
//
// JSON objects and arrays in a JSONL spine are kept as their raw JSON
// (jsontext.Value). The engine parses join keys and RFC 3339 timestamps
// from strings, so CSV spines need no type annotations.
//
// Result encodings:
//
//	value      CSV                      JSONL                      Parquet
//	Int64      decimal                  "123" (a JSON string, §4)  int64
//	Float64    strconv 'g' -1           number ("NaN" as string)   double
//	String     as is                    string                     string (UTF8)
//	Bool       true/false               true/false                 boolean
//	Timestamp  RFC 3339, nanoseconds    RFC 3339 string            timestamp(nanos, UTC)
//	Array      JSON array               JSON array                 LIST of the element type
//	null       empty cell               null                       null
//
// Spine columns written to Parquet take their type from the first non-null
// value among the first rows (see inferRows); every column is optional.
//
// Caveats: a JSONL spine's columns are those of its first row (a later row
// with a new member is an error naming its line; missing members are null),
// because the engine needs the columns before it reads any row. Parquet
// spines must be flat: nested and repeated columns are refused.
package tabular
