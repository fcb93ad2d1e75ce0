package engine

import (
	"github.com/featurelog/featurelog/vfs"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-json-experiment/json/v1"

	"github.com/featurelog/featurelog/internal/atomicfile"
)

// The manifest (segments/MANIFEST, JSON, replaced atomically) is the
// checkpoint: for every view version, the segments that hold its records
// and the log sequence through which they hold all of them. It is the
// commit point of flushes and merges: a segment file is written and made
// durable first, then the manifest naming it; a segment the manifest does
// not name is an orphan of a crash and is deleted on open. Open replays the
// log only after each view's covered sequence. Its JSON is part of the
// on-disk format (docs/format/manifest.md).
type manifest struct {
	Format      int                      `json:"format"`       // manifestFormat
	NextSegment uint64                   `json:"next_segment"` // ids below it have been used
	Views       map[string]*manifestView `json:"views"`        // by viewData.id
}

// manifestFormat is part of the on-disk format; do not change.
const manifestFormat = 1

type manifestView struct {
	Fingerprint string `json:"fingerprint"`
	// Layout is viewData.layout when the segments were written; absent
	// in manifests of builds before issue 10's fix (see
	// viewData.legacy).
	Layout   string            `json:"layout,omitempty"`
	Covered  uint64            `json:"covered_seq"`
	Segments []manifestSegment `json:"segments"`
}

type manifestSegment struct {
	ID     uint64 `json:"id"`
	File   string `json:"file"`
	Level  int    `json:"level"`
	MinSeq uint64 `json:"min_seq"`
	MaxSeq uint64 `json:"max_seq"`
	Bytes  int64  `json:"bytes"`
}

func segmentsDir(dir string) string { return filepath.Join(dir, "segments") }

func manifestPath(dir string) string { return filepath.Join(segmentsDir(dir), "MANIFEST") }

func segmentFile(id uint64) string { return fmt.Sprintf("%016d.seg", id) }

// loadManifest reads the manifest; a data directory without one has no
// segments.
func loadManifest(fs vfs.FS, dir string) (*manifest, error) {
	m := &manifest{Format: manifestFormat, NextSegment: 1, Views: map[string]*manifestView{}}
	data, err := vfs.ReadFile(fs, manifestPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("engine: %s is damaged: %w", manifestPath(dir), err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("engine: %s has format %d; this build reads format %d", manifestPath(dir), m.Format, manifestFormat)
	}
	if m.Views == nil {
		m.Views = map[string]*manifestView{}
	}
	return m, nil
}

// save writes the manifest atomically and durably.
func (m *manifest) save(fs vfs.FS, dir string) error {
	data, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFS(fs, manifestPath(dir), data)
}

// referenced returns the segment files the manifest names.
func (m *manifest) referenced() map[string]bool {
	out := map[string]bool{}
	for _, v := range m.Views {
		for _, s := range v.Segments {
			out[s.File] = true
		}
	}
	return out
}

// removeOrphans deletes segment files (and temporary files) the manifest
// does not name: leftovers of a flush or merge a crash interrupted.
func removeOrphans(fs vfs.FS, dir string, m *manifest) ([]string, error) {
	entries, err := fs.ReadDir(segmentsDir(dir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	ref := m.referenced()
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if name == "MANIFEST" || ref[name] || (!strings.HasSuffix(name, ".seg") && !strings.Contains(name, ".tmp")) {
			continue
		}
		if err := fs.Remove(filepath.Join(segmentsDir(dir), name)); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		return removed, fs.SyncDir(segmentsDir(dir))
	}
	return nil, nil
}
