// Package errorfs wraps a vfs.FS for tests of what featurelog does when
// the disk fails or the power goes: an Injector fails the n-th operation
// (or every operation of some kinds) with an error wrapping syscall.EIO,
// and a Recorder tracks which bytes and names an fsync made durable, so
// that Image can write the directory a power loss would leave. It is
// test machinery, kept apart from the production file system (package
// vfs), as pebble keeps vfs/errorfs apart from vfs.
//
//	in := errorfs.NewInjector(vfs.Default)
//	in.FailOps(errorfs.OpSync)
//	db, err := engine.Open(engine.Options{Dir: dir, FS: in})
package errorfs
