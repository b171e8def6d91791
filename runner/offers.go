package runner

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Offer timing, n8n's runner's constants (docs/protocol.md §5.2).
const (
	OfferInterval       = 250 * time.Millisecond
	OfferValidity       = 5000 * time.Millisecond
	OfferValidityJitter = 500 // ms, exclusive upper bound of the random extra
	OfferGrace          = 100 * time.Millisecond
)

// offers are the runner's open offers, by id, with their local expiry
// (validFor plus OfferGrace, as n8n's runner counts them).
type offers map[string]time.Time

// expire drops offers whose local validity has passed.
func (o offers) expire(now time.Time) {
	for id, until := range o {
		if now.After(until) {
			delete(o, id)
		}
	}
}

// take removes and reports an offer that is still valid at now.
func (o offers) take(id string, now time.Time) bool {
	until, ok := o[id]
	if !ok || now.After(until) {
		return false
	}
	delete(o, id)
	return true
}

// newOffer returns a fresh offer id and its validFor in milliseconds.
func newOffer() (string, int) {
	return newID(), int(OfferValidity/time.Millisecond) + rand.IntN(OfferValidityJitter+1)
}

// newID is an opaque id for offers and rpc calls.
func newID() string {
	return strings.ReplaceAll(uuid.NewString(), "-", "")
}
