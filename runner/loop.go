package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/pool"
)

// Causes of a task's context cancellation.
var (
	errCancelledByBroker = errors.New("cancelled by the broker")
	errConnectionLost    = errors.New("connection to the broker lost")
	// errShutdown kills at once: the task already had the graceful timeout.
	errShutdown = fmt.Errorf("runner shutting down: %w", pool.ErrKillNow)
	// errTaskOver releases the context of a task that has ended.
	errTaskOver = errors.New("task over")
)

// shutdownReportWait bounds how long, after killing the remaining tasks on
// shutdown, the loop waits for them to report before closing anyway.
const shutdownReportWait = 500 * time.Millisecond

type taskState int

const (
	waitingForSettings taskState = iota
	running
)

// task is an accepted task, from broker:taskofferaccept to its result.
type task struct {
	id       string
	state    taskState
	conn     *broker.Conn
	cancel   context.CancelCauseFunc
	settings settings
	started  time.Time
}

// loopState is owned by the loop goroutine alone.
type loopState struct {
	conn       *broker.Conn
	connDone   chan error
	registered bool
	draining   bool // broker:drain received on this connection
	offers     offers
	tasks      map[string]*task
	stopping   bool
	stopAt     <-chan time.Time // graceful timeout, once stopping with tasks
	killed     bool
	killWait   <-chan time.Time
}

// loop is the runner: every state change happens here, one event at a
// time. It returns nil after a clean shutdown or idle exit.
func (r *Runner) loop(ctx context.Context) error {
	s := &loopState{offers: offers{}, tasks: map[string]*task{}}
	ticker := time.NewTicker(OfferInterval)
	defer ticker.Stop()
	idle := newIdleTimer(r.opts.AutoShutdownTimeout)
	defer idle.stop()
	shutdown := r.shutdown

	for {
		select {
		case <-ctx.Done():
			r.abandon(s, ctx.Err())
			return ctx.Err()

		case ev := <-r.events:
			switch ev := ev.(type) {
			case connOpened:
				r.attach(s, ev)
				idle.stop()
			case connClosed:
				r.detach(s, ev.conn, ev.err)
			case frameIn:
				if ev.conn == s.conn {
					r.handleFrame(ctx, s, idle, ev)
				}
			case taskEnded:
				s.forget(ev.id)
				r.opts.Observer.TaskFinished(ev.outcome, ev.took)
				idle.arm()
				r.topUp(s)
			}

		case <-ticker.C:
			r.topUp(s)

		case <-idle.C():
			if len(s.tasks) > 0 {
				continue // re-armed when they end
			}
			r.log.Info("Reached idle timeout, starting shutdown...")
			r.Shutdown()

		case <-shutdown:
			shutdown = nil
			s.stopping = true
			clear(s.offers)
			r.opts.Observer.OffersOpen(0)
			if len(s.tasks) > 0 {
				s.stopAt = time.After(r.opts.GracefulShutdownTimeout)
			}

		case <-s.stopAt:
			s.stopAt = nil
			r.log.Warn(fmt.Sprintf("Graceful shutdown timeout of %s reached; killing %d running task(s)",
				r.opts.GracefulShutdownTimeout, len(s.tasks)))
			for _, t := range s.tasks {
				if t.state == waitingForSettings {
					r.drop(s, t.id)
					continue
				}
				t.cancel(errShutdown)
			}
			s.killed = true
			s.killWait = time.After(shutdownReportWait)

		case <-s.killWait:
			r.log.Warn(fmt.Sprintf("%d task(s) did not report after being killed", len(s.tasks)))
			for id := range s.tasks {
				r.drop(s, id)
			}
		}

		if s.stopping && len(s.tasks) == 0 {
			r.finish(s)
			return nil
		}
	}
}

// forget removes a task from the loop's state and releases its context,
// however the task ended. The context is a child of the loop's, which
// would otherwise keep it, and what it refers to, for the runner's life.
func (s *loopState) forget(id string) {
	if t := s.tasks[id]; t != nil && t.cancel != nil {
		t.cancel(errTaskOver)
	}
	delete(s.tasks, id)
}

// attach makes conn the current connection; the broker will send
// broker:inforequest at once.
func (r *Runner) attach(s *loopState, ev connOpened) {
	// No connection is current: serve returns, and the dialer may dial
	// again, only once detach has answered on the last one's done.
	s.conn, s.connDone = ev.conn, ev.done
	s.registered, s.draining = false, false
	r.opts.Observer.Connected(true)
	if s.stopping {
		// Shutdown began while we were connecting: nothing to serve.
		s.conn.Close()
		r.detach(s, s.conn, broker.ErrStop)
	}
}

// detach forgets a connection that is over. Its open offers die with it
// and so do its tasks: the broker has already failed them to n8n
// (TaskRunnerDisconnectedError), so a result could not be delivered.
func (r *Runner) detach(s *loopState, conn *broker.Conn, why error) {
	if conn != s.conn || conn == nil {
		return
	}
	switch {
	case errors.Is(why, broker.ErrStop) || s.stopping:
	case r.singleUse:
		r.log.Info(fmt.Sprintf("Disconnected from broker: %v", why))
	default:
		r.log.Warn(fmt.Sprintf("Disconnected from broker: %v", why))
	}
	for id, t := range s.tasks {
		if t.conn != conn {
			continue
		}
		if t.state == waitingForSettings {
			r.drop(s, id)
			continue
		}
		t.cancel(errConnectionLost)
	}
	clear(s.offers)
	r.opts.Observer.OffersOpen(0)
	r.opts.Observer.Connected(false)
	s.connDone <- why
	s.conn, s.connDone, s.registered = nil, nil, false
}

// drop forgets a task that will never report (it got no settings, or did
// not answer being killed) and counts it as cancelled.
func (r *Runner) drop(s *loopState, id string) {
	s.forget(id)
	r.opts.Observer.TaskFinished("cancelled", 0)
}

// finish ends the last connection with a normal close (1000), before
// letting go of it.
func (r *Runner) finish(s *loopState) {
	if s.conn != nil {
		conn := s.conn
		_ = conn.Close()
		r.detach(s, conn, broker.ErrStop)
	}
}

// abandon is the hard stop (ctx cancelled): kill everything, report
// nothing.
func (r *Runner) abandon(s *loopState, why error) {
	for _, t := range s.tasks {
		if t.cancel != nil {
			t.cancel(errShutdown)
		}
	}
	if s.conn != nil {
		conn := s.conn
		r.detach(s, conn, why)
		_ = conn.CloseNow()
	}
}

// topUp keeps min(concurrency, pool capacity) − tasks offers open, as
// n8n's runner does on every 250 ms tick; pyrunner also calls it the
// moment a slot frees up.
func (r *Runner) topUp(s *loopState) {
	if s.conn == nil || !s.registered || s.draining || s.stopping {
		return
	}
	now := time.Now()
	s.offers.expire(now)
	want := min(r.opts.MaxConcurrency, r.exec.Capacity()) - len(s.tasks) - len(s.offers)
	for range want {
		id, validFor := newOffer()
		if err := r.send(s.conn, broker.TaskOffer(id, r.opts.TaskType, validFor)); err != nil {
			break
		}
		s.offers[id] = now.Add(time.Duration(validFor)*time.Millisecond + OfferGrace)
	}
	r.opts.Observer.OffersOpen(len(s.offers))
}

func (r *Runner) send(conn *broker.Conn, m broker.Message) error {
	return r.sendFrame(conn, broker.Encode(m))
}

// sendTimeout bounds one write to the broker.
const sendTimeout = 30 * time.Second

// errFrameTooLarge: the frame is larger than N8N_RUNNERS_MAX_PAYLOAD; the
// broker would close the connection over it, failing every task on it.
var errFrameTooLarge = errors.New("frame exceeds N8N_RUNNERS_MAX_PAYLOAD")

// sendFrame sends one frame, or refuses one the broker would not accept.
func (r *Runner) sendFrame(conn *broker.Conn, frame []byte) error {
	if len(frame) > r.opts.MaxPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, len(frame), r.opts.MaxPayload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	if err := conn.Send(ctx, frame); err != nil {
		r.log.Debug("send to broker failed", "error", err)
		return err
	}
	return nil
}

// errorJSON is a runner:taskerror error object.
func errorJSON(e *pool.TaskError) json.RawMessage {
	b, _ := broker.RawJSON(e) // a TaskError always encodes
	return b
}
