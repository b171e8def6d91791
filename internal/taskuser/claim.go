package taskuser

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// uidBlocks is how many blocks of task uids root pyrunners on one machine
// can claim at once.
const uidBlocks = 1000

// claimUIDBlock gives this pyrunner a block of count task uids that no
// other pyrunner on the machine uses: with shared uids, one instance's
// tasks could signal another's, and its clean-up (kill everything of a
// uid) would kill them. Blocks are claimed with a lock file each, held for
// the life of the process, so a crashed instance frees its block at once.
// The returned file must stay open.
func claimUIDBlock(base, count int) (int, *os.File, error) {
	dir := filepath.Join(os.TempDir(), "pyrunner-uid-blocks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, fmt.Errorf("claiming task uids: %w", err)
	}
	for k := range uidBlocks {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d-%d", base+k*count, count)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("claiming task uids: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return base + k*count, f, nil
		}
		f.Close()
	}
	return 0, nil, fmt.Errorf("claiming task uids: all %d blocks of %d uids from %d are taken", uidBlocks, count, base)
}
