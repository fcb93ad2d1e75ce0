package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptionsValidate: options that cannot work are refused by Open with
// the field's name, before the directory is touched; 0 takes the default
// and -1 disables the caches.
func TestOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.FlushRecords = -1 }, "Options.FlushRecords must not be negative"},
		{func(o *Options) { o.FlushInterval = -1 }, "Options.FlushInterval"},
		{func(o *Options) { o.SegmentSize = -5 }, "Options.SegmentSize"},
		{func(o *Options) { o.BackfillWorkers = -2 }, "Options.BackfillWorkers"},
		{func(o *Options) { o.BackfillRunRecords = -2 }, "Options.BackfillRunRecords"},
		{func(o *Options) { o.CompactionFanIn = 1 }, "Options.CompactionFanIn must be at least 2"},
		{func(o *Options) { o.HotTierBytes = -2 }, "HotTierBytes and StateCacheBytes"},
		{func(o *Options) { o.StateCacheBytes = -3 }, "HotTierBytes and StateCacheBytes"},
		{func(o *Options) { o.MaxClockSkew = -1 }, "Options.MaxClockSkew"},
		{func(o *Options) { o.SegmentCodec = 7 }, "Options.SegmentCodec"},
	} {
		dir := t.TempDir() + "/data"
		o := Options{Dir: dir}
		c.mod(&o)
		_, err := Open(o)
		require.ErrorContains(t, err, c.want)
		assert.NoDirExists(t, dir)
	}
	db, err := Open(Options{Dir: t.TempDir(), HotTierBytes: -1, StateCacheBytes: -1, CompactionFanIn: 2})
	require.NoError(t, err)
	require.NoError(t, db.Close())
}
