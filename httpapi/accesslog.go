package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// accessLog logs one line per request at debug level, after it is
// answered: method, path, status, bytes written, duration and the
// client's address. The path is logged without its query and no header
// is logged, so neither an API key (Authorization) nor a query value can
// reach the log. At info and above it costs one Enabled check.
func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !logger.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &countingWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		logger.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.code),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr))
	})
}

// countingWriter remembers the status code and counts the body bytes a
// handler wrote.
type countingWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *countingWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's Flush and
// deadlines (streamed answers, output streams).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
