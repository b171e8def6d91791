package metrics

import (
	"fmt"
	"time"
)

// Readiness is the /readyz answer.
type Readiness struct {
	Ready bool `json:"ready"`
	// Reason says, when not ready, why, in words an operator can act on.
	Reason     string `json:"reason,omitempty"`
	Registered bool   `json:"registered"`
	// Since is how long the registration has been as it is.
	Since     string   `json:"since"`
	Capacity  int      `json:"capacity"`
	LastError string   `json:"lastError,omitempty"`
	Alerts    []string `json:"alerts,omitempty"`
}

// Ready: registered with the broker and able to run a task. The reason
// names the first thing in the way: the broker, stopped offers, the pool.
func (mon *Monitor) Ready() Readiness {
	b := mon.state.broker()
	capacity := mon.Capacity()
	r := Readiness{
		Ready:      b.registered && capacity > 0,
		Registered: b.registered,
		Since:      time.Since(b.since).Round(time.Second).String(),
		Capacity:   capacity,
		LastError:  b.lastErr,
	}
	for _, a := range mon.Alerts() {
		r.Alerts = append(r.Alerts, a.Name)
	}
	switch hold := mon.holding(); {
	case r.Ready:
	case !b.registered && b.ever:
		r.Reason = fmt.Sprintf("broker disconnected since %s", b.since.UTC().Format(time.RFC3339))
		if b.lastErr != "" {
			r.Reason += ": " + b.lastErr
		}
	case !b.registered && b.lastErr != "":
		r.Reason = "not registered with the broker yet: " + b.lastErr
	case !b.registered:
		r.Reason = "not registered with the broker yet"
	case hold != "":
		r.Reason = hold
	default:
		p := mon.opts.Pool.Read()
		if p.Building != "" {
			r.Reason = p.Building
		} else if p.StartError != "" {
			r.Reason = "no task process can start: " + p.StartError
		} else {
			r.Reason = "the pool cannot run a task now (its zygotes are starting)"
		}
	}
	return r
}
