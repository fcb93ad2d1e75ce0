package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/featurelog/featurelog/engine"
)

func main() {
	src, dst, repo, prof := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	os.MkdirAll(filepath.Join(dst, "wal"), 0o755)
	ents, _ := os.ReadDir(filepath.Join(src, "wal"))
	n := 0
	for _, e := range ents {
		if len(e.Name()) == 20 {
			in, _ := os.Open(filepath.Join(src, "wal", e.Name()))
			out, _ := os.Create(filepath.Join(dst, "wal", e.Name()))
			io.Copy(out, in)
			in.Close()
			out.Close()
			n++
		}
	}
	f, _ := os.Create(prof)
	pprof.StartCPUProfile(f)
	defer pprof.StopCPUProfile()
	db, err := engine.Open(engine.Options{Dir: dst, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	data, _ := os.ReadFile(repo)
	t0 := time.Now()
	res, err := db.ApplyWait(context.Background(), "r.yaml", data)
	if err != nil {
		panic(err)
	}
	fmt.Println(time.Since(t0), res.Jobs[0].Result)
	db.Close()
}
