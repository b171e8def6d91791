package window

import (
	"math"
	"time"
)

// Durations are counted in logarithmic bins, binsPerOctave to each
// doubling from histMin: a percentile read from them is within 2.2% of the
// true value (half a bin), from 1 µs to over an hour.
const (
	binsPerOctave = 16
	octaves       = 32
	nBins         = binsPerOctave * octaves
	histMin       = time.Microsecond
)

// hist counts durations by bin, with their sum and extremes.
type hist struct {
	counts   [nBins]uint32
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

func binOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	return min(int(math.Log2(float64(d)/float64(histMin))*binsPerOctave), nBins-1)
}

// binValue is the geometric middle of bin i.
func binValue(i int) time.Duration {
	return time.Duration(float64(histMin) * math.Exp2((float64(i)+0.5)/binsPerOctave))
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[binOf(d)]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile is the nearest-rank q-quantile (0 < q ≤ 1), within half a bin,
// and never outside the smallest and largest value counted.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(max(binValue(i), h.min), h.max)
		}
	}
	return h.max
}

// Dist summarises durations: how many, their mean, median, 95th and 99th
// percentiles and the largest.
type Dist struct {
	Count              uint64
	Avg, P50, P95, P99 time.Duration
	Max                time.Duration
}

func (h *hist) dist() Dist {
	if h.n == 0 {
		return Dist{}
	}
	return Dist{Count: h.n, Avg: h.sum / time.Duration(h.n),
		P50: h.quantile(0.5), P95: h.quantile(0.95), P99: h.quantile(0.99), Max: h.max}
}
