//go:build unix

package errorfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/featurelog/featurelog/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInjectorFailsTheNthOperationOnly(t *testing.T) {
	dir := t.TempDir()
	in := NewInjector(vfs.Default)
	in.Trace()
	in.FailAt(3, false)
	f, err := in.Create(filepath.Join(dir, "a")) // 1
	require.NoError(t, err)
	_, err = f.Write([]byte("hello")) // 2
	require.NoError(t, err)
	err = f.Sync() // 3: fails
	require.ErrorIs(t, err, ErrInjected)
	require.ErrorIs(t, err, syscall.EIO)
	require.NoError(t, f.Close()) // 4
	require.NoError(t, in.SyncDir(dir))
	assert.Equal(t, int64(5), in.Count())
	assert.Equal(t, []string{"3 sync " + filepath.Join(dir, "a")}, in.Injected())
	assert.Len(t, in.Ops(), 5)
}

func TestInjectorStickyAndFailedWriteTears(t *testing.T) {
	dir := t.TempDir()
	in := NewInjector(vfs.Default)
	in.FailAt(2, true)
	f, err := in.Create(filepath.Join(dir, "a"))
	require.NoError(t, err)
	n, err := f.Write([]byte("0123456789"))
	require.ErrorIs(t, err, ErrInjected)
	assert.Equal(t, 5, n, "a failed write leaves half its bytes")
	require.ErrorIs(t, f.Sync(), ErrInjected)
	require.ErrorIs(t, in.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b")), ErrInjected)
	require.ErrorIs(t, vfs.NoteWrite(in, "x", 1), ErrInjected)
	data, err := os.ReadFile(filepath.Join(dir, "a"))
	require.NoError(t, err)
	assert.Equal(t, "01234", string(data))
}

func TestInjectorFailOps(t *testing.T) {
	dir := t.TempDir()
	in := NewInjector(vfs.Default)
	in.FailOps(OpSyncDir)
	require.ErrorIs(t, in.SyncDir(dir), ErrInjected)
	require.NoError(t, in.MkdirAll(filepath.Join(dir, "x")))
	in.FailOps()
	require.NoError(t, in.SyncDir(dir))
}

func TestReadOnlyCloseIsNotCounted(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644))
	in := NewInjector(vfs.Default)
	f, err := in.Open(filepath.Join(dir, "a"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, int64(1), in.Count())
}

// writeSynced creates name through fs with data and fsyncs it.
func writeSynced(t *testing.T, fs vfs.FS, name, data string) {
	t.Helper()
	require.NoError(t, vfs.WriteFileSync(fs, name, []byte(data)))
}

func readImage(t *testing.T, img, name string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(img, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	require.NoError(t, err)
	return string(data), true
}

func TestRecorderImages(t *testing.T) {
	scratch := t.TempDir()
	root := filepath.Join(scratch, "data")
	d := filepath.Join(root, "d")
	require.NoError(t, os.MkdirAll(d, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(d, "old"), []byte("old content"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "untracked"), []byte("as is"), 0o644))
	grave := filepath.Join(scratch, "grave")
	require.NoError(t, os.Mkdir(grave, 0o755))
	r, err := NewRecorder(vfs.Default, root, grave, "d")
	require.NoError(t, err)

	image := func(name string) string {
		img := filepath.Join(scratch, name)
		require.NoError(t, r.Image(img, nil))
		return img
	}

	// A synced file whose directory was not synced is not there.
	writeSynced(t, r, filepath.Join(d, "new"), "new")
	img := image("i1")
	_, ok := readImage(t, img, "d/new")
	assert.False(t, ok)
	got, _ := readImage(t, img, "untracked")
	assert.Equal(t, "as is", got)

	// Renamed over old without a directory sync: old content is back.
	require.NoError(t, r.Rename(filepath.Join(d, "new"), filepath.Join(d, "old")))
	img = image("i2")
	got, _ = readImage(t, img, "d/old")
	assert.Equal(t, "old content", got)

	// After the directory sync the rename is durable.
	require.NoError(t, r.SyncDir(d))
	img = image("i3")
	got, _ = readImage(t, img, "d/old")
	assert.Equal(t, "new", got)

	// Appended bytes are durable only once synced; a torn variant sees them.
	f, err := r.OpenWrite(filepath.Join(d, "old"))
	require.NoError(t, err)
	_, err = f.(*recordedFile).File.(*os.File).WriteAt([]byte("+more"), 3)
	require.NoError(t, err)
	img = image("i4")
	got, _ = readImage(t, img, "d/old")
	assert.Equal(t, "new", got, "unsynced bytes are not in the durable image")
	img = filepath.Join(scratch, "i5")
	require.NoError(t, r.Image(img, func(st FileState, data []byte) []byte {
		assert.Equal(t, int64(3), st.Durable)
		assert.Equal(t, int64(8), st.Size)
		return data[:st.Durable+2]
	}))
	got, _ = readImage(t, img, "d/old")
	assert.Equal(t, "new+m", got)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())

	// Removed without a directory sync: the file comes back.
	require.NoError(t, r.Remove(filepath.Join(d, "old")))
	img = image("i6")
	got, _ = readImage(t, img, "d/old")
	assert.Equal(t, "new+more", got)
	require.NoError(t, r.SyncDir(d))
	_, ok = readImage(t, image("i7"), "d/old")
	assert.False(t, ok)
}
