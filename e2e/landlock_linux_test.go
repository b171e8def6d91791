package e2e

import "syscall"

// landlockABI asks the kernel for its Landlock ABI version (0: none).
func landlockABI() int {
	const sysLandlockCreateRuleset, versionFlag = 444, 1
	v, _, errno := syscall.Syscall(sysLandlockCreateRuleset, 0, 0, versionFlag)
	if errno != 0 {
		return 0
	}
	return int(v)
}
