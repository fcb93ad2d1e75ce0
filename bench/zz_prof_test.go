package bench

import (
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/featurelog/featurelog/engine"
)

func TestZZProfileOpen(t *testing.T) {
	dir := t.TempDir()
	cfg := ReplayConfig{}
	cfg.EnsureDefaults()
	if err := fillLog(dir, cfg); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create("/tmp/open.prof")
	pprof.StartCPUProfile(f)
	for range 3 {
		t0 := time.Now()
		db, err := engine.Open(engine.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Log(time.Since(t0))
		db.Close()
	}
	pprof.StopCPUProfile()
	f.Close()
}
