// Package window keeps what tasks did over the last minutes, for /stats and
// the alerts: outcomes, limits hit, execution and queue-wait times as
// histograms, the longest queue and the caches' lookups, in slots of
// SlotWidth. Its memory is fixed (a few hundred KB) whatever the rate.
//
// Read Recorder, then Summary. A Recorder takes its clock from its caller,
// so tests drive it with synthetic times.
package window
