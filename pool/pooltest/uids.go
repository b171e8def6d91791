package pooltest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Test uid blocks: 1000 blocks of 1024 from 2000000000, clear of the
// blocks root pyrunners claim (1900000000 on) and of every uid a system
// hands out.
const (
	testUIDBase    = 2000000000
	testUIDBlock   = 1024
	testUIDBlocks  = 1000
	testUIDLockDir = "pyrunner-test-uid-blocks"
)

// UIDBlock returns the first of count uids (at most 1024) that no other
// test on this machine runs tasks as while t runs. A uid is shared state:
// RLIMIT_NPROC counts every process of it, and kill-by-uid reaches every
// process of it, so two test runs side by side (two `make test`, or the
// suite and someone's debugging) that give tasks the same uid, nobody
// say, fork-bomb and kill each other's tasks. The block is claimed with a
// lock file, as pyrunner claims its task uids (cmd/pyrunner/uids.go), and
// released when t ends.
func UIDBlock(t testing.TB, count int) int {
	t.Helper()
	if count < 1 || count > testUIDBlock {
		t.Fatalf("UIDBlock(%d): a block holds 1 to %d uids", count, testUIDBlock)
	}
	dir := filepath.Join(os.TempDir(), testUIDLockDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k := range testUIDBlocks {
		first := testUIDBase + k*testUIDBlock
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(first)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			t.Cleanup(func() { f.Close() })
			return first
		}
		f.Close()
	}
	t.Fatalf("all %d test uid blocks in %s are taken", testUIDBlocks, dir)
	return 0
}
