package pool

import (
	"math"
	"time"
)

// rateMeter is an exponentially decaying rate of events per second, with a
// time constant of a couple of seconds: recent enough to follow bursts,
// smooth enough not to thrash. Not safe for concurrent use: its owner
// guards it.
type rateMeter struct {
	value float64
	last  time.Time
}

const rateTau = 2.0 // seconds

func (r *rateMeter) decay(now time.Time) {
	if !r.last.IsZero() {
		r.value *= math.Exp(-now.Sub(r.last).Seconds() / rateTau)
	}
	r.last = now
}

// arrive counts one event at now.
func (r *rateMeter) arrive(now time.Time) {
	r.decay(now)
	r.value += 1 / rateTau
}

// perSecond is the rate at now.
func (r *rateMeter) perSecond(now time.Time) float64 {
	if r.last.IsZero() {
		return 0
	}
	return r.value * math.Exp(-now.Sub(r.last).Seconds()/rateTau)
}
