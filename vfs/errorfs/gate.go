package errorfs

import (
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/featurelog/featurelog/vfs"
)

// Gate holds segment files back: once armed, the first Create of a file
// whose name contains ".seg" waits until Release, and so does every later
// one. A backfill ends by writing its segments, so a gate keeps one
// RUNNING for as long as a test needs.
//
//	g := errorfs.NewGate(vfs.Default)
//	db, _ := engine.Open(engine.Options{FS: g, ...})
//	g.Arm()
//	// start the job; <-g.Blocked() once it waits
//	g.Release()
type Gate struct {
	vfs.FS
	armed   atomic.Bool
	blocked chan struct{} // closed when a Create first waits
	gate    chan struct{} // closed by Release
	once    sync.Once
	opened  sync.Once
}

// NewGate returns a disarmed gate over fs.
func NewGate(fs vfs.FS) *Gate {
	return &Gate{FS: fs, blocked: make(chan struct{}), gate: make(chan struct{})}
}

// Arm makes segment creation wait from now on.
func (g *Gate) Arm() { g.armed.Store(true) }

// Blocked is closed once a Create first waits.
func (g *Gate) Blocked() <-chan struct{} { return g.blocked }

// Release lets every waiting and later Create through; it may be called
// more than once.
func (g *Gate) Release() { g.once.Do(func() { close(g.gate) }) }

// Create creates name, first waiting for Release when armed and name is
// a segment.
func (g *Gate) Create(name string) (vfs.File, error) {
	if g.armed.Load() && strings.Contains(filepath.Base(name), ".seg") {
		g.opened.Do(func() { close(g.blocked) })
		<-g.gate
	}
	return g.FS.Create(name)
}
