package pool

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// verdictCacheSize is n8n's: its runner keeps the last 500 analyses.
const verdictCacheSize = 500

// verdicts remembers, by the sha256 of the code, what the static analysis
// said under this executor's allowlists (fixed for its life), as n8n's
// runner caches its analyses. Each task runs in a fresh process, so the
// cache lives here: code seen to be refused is refused again without a
// process; code seen to pass skips the check.
//
// A verdict comes from the task process, which reports the analysis before
// any user code runs; what user code could forge afterwards concerns its
// own code only.
type verdicts struct {
	mu    sync.Mutex
	order *list.List // most recent first; values are *verdict
	byKey map[[32]byte]*list.Element
}

type verdict struct {
	key     [32]byte
	refused *TaskError // nil: the code passed
}

func newVerdicts() *verdicts {
	return &verdicts{order: list.New(), byKey: map[[32]byte]*list.Element{}}
}

// lookup returns whether the code was seen, and its refusal if it was refused.
func (v *verdicts) lookup(code string) (known bool, refused *TaskError) {
	if v == nil || code == "" {
		return false, nil
	}
	key := sha256.Sum256([]byte(code))
	v.mu.Lock()
	defer v.mu.Unlock()
	el, ok := v.byKey[key]
	if !ok {
		return false, nil
	}
	v.order.MoveToFront(el)
	return true, el.Value.(*verdict).refused
}

// securityViolations is the analysis's refusal (reference §12.3); other
// static errors (syntax, settings) are not verdicts on the code alone.
const securityViolations = "Security violations detected"

// record notes the outcome of a task that ran code: the analysis refused it,
// or any non-static outcome means it passed.
func (v *verdicts) record(code string, res Result) {
	if v == nil || code == "" {
		return
	}
	var refused *TaskError
	if res.Err != nil {
		switch {
		case res.Err.Kind == KindStatic && res.Err.Message == securityViolations:
			refused = res.Err
		case res.Err.Kind == KindUser:
		default:
			return // a syntax error, or killed, timed out, crashed before the analysis ended
		}
	}
	key := sha256.Sum256([]byte(code))
	v.mu.Lock()
	defer v.mu.Unlock()
	if el, ok := v.byKey[key]; ok {
		el.Value = &verdict{key: key, refused: refused}
		v.order.MoveToFront(el)
		return
	}
	v.byKey[key] = v.order.PushFront(&verdict{key: key, refused: refused})
	if v.order.Len() > verdictCacheSize {
		oldest := v.order.Back()
		v.order.Remove(oldest)
		delete(v.byKey, oldest.Value.(*verdict).key)
	}
}
