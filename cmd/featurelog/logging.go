package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// logFlags are the logging flags of featurelog serve.
type logFlags struct {
	level  string // --log-level: debug, info, warn or error
	format string // --log-format: text or json
}

// json reports whether logs are JSON: then nothing else may be written
// to stderr as plain text.
func (f logFlags) json() bool { return strings.EqualFold(f.format, "json") }

// newLogger returns the logger the flags ask for, writing to w, or an
// error naming the bad value and the accepted ones.
func (f logFlags) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(f.level) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", f.format)
}

// loggedError is an error a command has already logged (as JSON): main
// exits 1 without printing it again as plain text.
type loggedError struct{ error }

func (e *loggedError) Unwrap() error { return e.error }

// reportError prints err for the user unless it was logged already.
func reportError(w io.Writer, err error) {
	var logged *loggedError
	if errors.As(err, &logged) {
		return
	}
	fmt.Fprintln(w, "featurelog:", err)
}
