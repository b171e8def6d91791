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
// A verdict comes in the task process's reply. User code could forge that
// reply (in reuse mode, a thread left by an earlier task could forge a
// later task's), but whoever can forge it already runs code in a task
// process: a false "passed" gains nothing the sandbox's OS fences do not
// still hold.
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

// securityViolations is the analysis's refusal (docs/sandbox.md §3); other
// static errors (syntax, settings) are not verdicts on the code alone.
const securityViolations = "Security violations detected"

// record notes what the analysis said of code: refused, or passed as the
// task process reported before running it. Anything else (a syntax error, a
// failed analysis, a process killed or crashed before it answered) is not
// a verdict and is not remembered.
func (v *verdicts) record(code string, res Result) {
	if v == nil || code == "" {
		return
	}
	var refused *TaskError
	switch {
	case res.Err != nil && res.Err.Kind == KindStatic && res.Err.Message == securityViolations:
		refused = res.Err
	case res.AnalysisPassed:
	default:
		return
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
