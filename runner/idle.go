package runner

import "time"

// idleTimer fires when the runner has had nothing to do for its timeout
// (N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT). A nil *idleTimer is "idle shutdown
// disabled": every method is a no-op and C never fires.
//
//	disarmed --arm--> armed --timeout--> fired (C receives)
//	   ^                |
//	   +-----arm--------+  (re-arm restarts the countdown)
//
// Only the runner loop uses it, so it needs no locking.
type idleTimer struct {
	timeout time.Duration
	timer   *time.Timer
}

func newIdleTimer(timeout time.Duration) *idleTimer {
	if timeout <= 0 {
		return nil
	}
	t := time.NewTimer(timeout)
	t.Stop()
	return &idleTimer{timeout: timeout, timer: t}
}

// arm (re)starts the countdown.
func (t *idleTimer) arm() {
	if t == nil {
		return
	}
	t.timer.Reset(t.timeout)
}

// C fires once the countdown ends; nil (never ready) when disabled.
func (t *idleTimer) C() <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.timer.C
}

func (t *idleTimer) stop() {
	if t == nil {
		return
	}
	t.timer.Stop()
}
