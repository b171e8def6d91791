package pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/python"
)

// ErrZygoteDead is returned for requests to a zygote that has exited.
var ErrZygoteDead = errors.New("zygote exited")

// ProcessSpec says how to start Python processes: which interpreter, with
// which runtime on sys.path, in which environment.
type ProcessSpec struct {
	Executable string
	RuntimeDir string
	// Env is the complete environment of every Python process: never the
	// runner's own, which may hold secrets.
	Env    []string
	Config python.Config
	// StartupTimeout bounds a zygote's start, imports included, and its
	// answer to a fork request: a zygote that takes longer is replaced.
	StartupTimeout time.Duration
	Logger         *slog.Logger
}

func (s ProcessSpec) startupTimeout() time.Duration {
	if s.StartupTimeout <= 0 {
		return 30 * time.Second
	}
	return s.StartupTimeout
}

func (s ProcessSpec) command(entry string) *exec.Cmd {
	cmd := exec.Command(s.Executable, "-I", "-B", "-c", python.Bootstrap(entry), s.RuntimeDir)
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean "inherit the runner's"
	}
	cmd.Dir = "/"
	return cmd
}

// zygote is one Python process that forks task processes on request
// (python/doc.go, "Zygote control socket").
type zygote struct {
	cmd    *exec.Cmd
	ctl    *net.UnixConn
	logger *slog.Logger
	// outputs are the read ends of its stdout and stderr, logged line by
	// line until every process that inherited them has let go.
	outputs []*os.File
	// wg counts the goroutines the zygote runs: its two log readers, its
	// waiter and its control-socket reader. close waits for them.
	wg sync.WaitGroup
	// answerTimeout bounds the wait for the answer to a fork request.
	answerTimeout time.Duration
	// uids is the range its task processes run as when each has a uid of
	// its own (count 0 otherwise).
	uids uidRange

	// mu guards the fields below.
	mu       sync.Mutex
	nextID   int
	spawns   map[int]chan spawnReply
	exits    map[int]*processExit
	dead     chan struct{} // closed once the zygote is gone
	deadErr  error
	waitDone chan struct{}
}

type spawnReply struct {
	pid  int
	exit *processExit
	err  error
}

// startZygote starts the zygote, sends it its configuration and waits for
// it to report ready (its imports done).
func startZygote(ctx context.Context, spec ProcessSpec) (*zygote, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("zygote control socket: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "zygote-control")
	theirs := os.NewFile(uintptr(fds[1]), "zygote-control-child")
	defer ours.Close()
	defer theirs.Close()

	cmd := spec.command("zygote")
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	// Own process group: a Ctrl-C on the terminal reaches pyrunner, which
	// stops the zygote itself. Pdeathsig: never outlive pyrunner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Our own pipes rather than cmd.StdoutPipe: task processes inherit them
	// until they silence their streams, so EOF comes when all have let go,
	// which may be after Wait.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("zygote output pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("zygote output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	theirs.Close() // now only the zygote holds it: its exit is our EOF
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("starting zygote: %w", err)
	}
	conn, err := net.FileConn(ours)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("zygote control socket: %w", err)
	}
	z := &zygote{
		cmd: cmd, ctl: conn.(*net.UnixConn), logger: spec.Logger, outputs: []*os.File{outR, errR},
		answerTimeout: spec.startupTimeout(), uids: uidsOf(spec.Config),
		spawns: map[int]chan spawnReply{}, exits: map[int]*processExit{},
		dead: make(chan struct{}), waitDone: make(chan struct{}),
	}
	z.goTracked(func() { logLines(outR, spec.Logger, slog.LevelDebug, "zygote") })
	z.goTracked(func() { logLines(errR, spec.Logger, slog.LevelWarn, "zygote") })
	z.goTracked(func() {
		err := cmd.Wait()
		z.die(fmt.Errorf("%w: %v", ErrZygoteDead, err))
		close(z.waitDone)
	})

	if err := z.handshake(ctx, spec); err != nil {
		_ = z.close()
		return nil, err
	}
	z.goTracked(z.readLoop)
	return z, nil
}

func (z *zygote) goTracked(f func()) {
	z.wg.Add(1)
	go func() {
		defer z.wg.Done()
		f()
	}()
}

func (z *zygote) handshake(ctx context.Context, spec ProcessSpec) error {
	b := python.ConfigFrame(spec.Config)
	timeout := spec.startupTimeout()
	// Cancelling ctx (the executor closing) ends the wait at once.
	defer deadlineOrDone(ctx, z.ctl, time.Now().Add(timeout))()
	if _, err := z.ctl.Write(b); err != nil {
		return fmt.Errorf("configuring zygote: %w", err)
	}
	buf := make([]byte, 1<<16)
	n, err := z.ctl.Read(buf)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("zygote start abandoned: %w", context.Cause(ctx))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("zygote not ready within %s (N8N_PYTHON_POOL_STARTUP_TIMEOUT)", timeout)
		}
		return fmt.Errorf("zygote failed to start: %w (its stderr is in the log)", err)
	}
	m, err := python.DecodeControl(buf[:n])
	if err == nil && m.Op == "failed" {
		return fmt.Errorf("zygote failed to start: %s", m.Error)
	}
	if err != nil || m.Op != "ready" {
		return fmt.Errorf("zygote sent %q instead of ready (%v)", buf[:n], err)
	}
	z.logger.Debug("zygote ready", "pid", m.Pid, "python", m.Version)
	if m.Landlock != nil && *m.Landlock == 0 && spec.Config.LandlockABI != 0 {
		z.logger.Warn("Landlock is not available here (Linux before 5.13, or blocked by a seccomp profile): " +
			"task processes keep their other fences, but files, ptrace and signals rest on uids and seccomp alone; " +
			"run pyrunner as root so that each task gets a uid of its own (README: Security)")
	}
	return nil
}

func (z *zygote) readLoop() {
	buf := make([]byte, 1<<16)
	for {
		n, err := z.ctl.Read(buf)
		if err != nil || n == 0 {
			z.die(fmt.Errorf("%w: control socket: %v", ErrZygoteDead, err))
			return
		}
		m, err := python.DecodeControl(buf[:n])
		if err != nil {
			z.logger.Warn("zygote sent an invalid message", "error", err)
			continue
		}
		z.dispatch(m)
	}
}

func (z *zygote) dispatch(m python.ControlMsg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	switch m.Op {
	case "spawned", "spawnfailed":
		ch, ok := z.spawns[m.ID]
		if !ok {
			return
		}
		delete(z.spawns, m.ID)
		if m.Op == "spawned" {
			exit := newProcessExit()
			z.exits[m.Pid] = exit
			ch <- spawnReply{pid: m.Pid, exit: exit}
		} else {
			ch <- spawnReply{err: fmt.Errorf("zygote could not fork: %s", m.Error)}
		}
	case "exited":
		exit, ok := z.exits[m.Pid]
		if !ok {
			return
		}
		delete(z.exits, m.Pid)
		st := exitStatus{signal: syscall.Signal(m.Signal)}
		if m.Code != nil {
			st.code = *m.Code
		}
		exit.set(st)
	}
}

// die marks the zygote gone: pending spawns fail and every task process it
// had is reported lost (they die with it: PR_SET_PDEATHSIG).
func (z *zygote) die(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	select {
	case <-z.dead:
		return
	default:
	}
	z.deadErr = err
	close(z.dead)
	for id, ch := range z.spawns {
		ch <- spawnReply{err: err}
		delete(z.spawns, id)
	}
	for pid, exit := range z.exits {
		exit.set(exitStatus{lost: true})
		delete(z.exits, pid)
	}
}

// spawn forks a task process that serves up to maxTasks tasks (0: no limit)
// on a channel of its own.
func (z *zygote) spawn(ctx context.Context, maxTasks int) (*forkedProcess, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("task channel: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "task-channel")
	defer ours.Close()
	defer syscall.Close(fds[1])

	reply := make(chan spawnReply, 1)
	z.mu.Lock()
	if z.deadErr != nil {
		z.mu.Unlock()
		return nil, z.deadErr
	}
	z.nextID++
	id := z.nextID
	z.spawns[id] = reply
	err = z.write(python.SpawnMsg(id, maxTasks), syscall.UnixRights(fds[1]))
	if err != nil {
		delete(z.spawns, id)
	}
	z.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("asking zygote to fork: %w", err)
	}

	var r spawnReply
	timer := time.NewTimer(z.answerTimeout)
	defer timer.Stop()
	select {
	case r = <-reply:
	case <-ctx.Done():
		// The reply will still come; the process it names will find its
		// channel closed and exit.
		return nil, ctx.Err()
	case <-timer.C:
		// A fork takes milliseconds: a zygote this slow is stuck. Kill it;
		// its supervisor starts another.
		z.logger.Error("Python zygote stopped answering; replacing it", "pid", z.cmd.Process.Pid, "waited", z.answerTimeout)
		_ = z.cmd.Process.Kill()
		return nil, fmt.Errorf("%w: no answer to a fork request in %s", ErrZygoteDead, z.answerTimeout)
	}
	if r.err != nil {
		return nil, r.err
	}
	conn, err := net.FileConn(ours)
	if err != nil {
		_ = z.signal(id, r.pid, syscall.SIGKILL)
		return nil, fmt.Errorf("task channel: %w", err)
	}
	return &forkedProcess{pid: r.pid, spawnID: id, conn: conn, exit: r.exit, zygote: z}, nil
}

// signal asks the zygote to signal the group of task process pid, forked
// for spawn request id. The zygote is its parent: it knows whether the
// process is still unreaped and which request it was forked for, so a
// recycled pid is never hit, not even one it gave a later child.
func (z *zygote) signal(id, pid int, sig syscall.Signal) error {
	return z.write(python.KillMsg(id, pid, int(sig)), nil)
}

// forkedProcess is a task process a zygote forked; the zygote is its
// parent, signals it and reports its end.
type forkedProcess struct {
	pid     int
	spawnID int // the spawn request it was forked for
	conn    net.Conn
	exit    *processExit
	zygote  *zygote
}

var _ taskProcess = (*forkedProcess)(nil)

func (p *forkedProcess) Pid() int                { return p.pid }
func (p *forkedProcess) Channel() net.Conn       { return p.conn }
func (p *forkedProcess) Exited() <-chan struct{} { return p.exit.done }
func (p *forkedProcess) ExitStatus() exitStatus  { return p.exit.status }

// Signal goes through the zygote. A zygote that is gone took the process
// with it (PR_SET_PDEATHSIG): nothing is left to signal.
func (p *forkedProcess) Signal(sig syscall.Signal) error {
	select {
	case <-p.exit.done:
		return nil
	case <-p.zygote.dead:
		return nil
	default:
	}
	return p.zygote.signal(p.spawnID, p.pid, sig)
}

// write sends one control message. A zygote that does not take it within
// answerTimeout is stuck: it is killed (its supervisor starts another), so
// that no caller, and no lock it holds, waits on it for ever.
func (z *zygote) write(msg, oob []byte) error {
	_ = z.ctl.SetWriteDeadline(time.Now().Add(z.answerTimeout))
	_, _, err := z.ctl.WriteMsgUnix(msg, oob, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		z.logger.Error("Python zygote stopped reading its control socket; replacing it", "pid", z.cmd.Process.Pid, "waited", z.answerTimeout)
		_ = z.cmd.Process.Kill()
	}
	return err
}

// close stops the zygote and, through it, every task process. Safe to call
// twice. It fails only when the zygote had to be killed and even that
// failed.
func (z *zygote) close() error {
	_ = z.ctl.Close() // the zygote kills its children and exits on hang-up
	grace := time.NewTimer(KillGrace)
	defer grace.Stop()
	var err error
	select {
	case <-z.waitDone:
	case <-grace.C:
		z.logger.Debug("zygote still running a second after its control socket closed: SIGKILL", "pid", z.cmd.Process.Pid)
		if kerr := z.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
			err = fmt.Errorf("killing zygote %d: %w", z.cmd.Process.Pid, kerr)
		}
		<-z.waitDone
	}
	if z.uids.count > 0 {
		// Killed, or dead before it could clean up: what its tasks started
		// and detached may still run, as uids that only its tasks use.
		killUIDs(z.uids, z.logger)
	}
	// The output pipes reach EOF once every process that inherited them is
	// gone. A straggler that escaped the clean-up gets KillGrace; then the
	// log readers stop.
	for _, f := range z.outputs {
		_ = f.SetReadDeadline(time.Now().Add(KillGrace))
	}
	z.wg.Wait()
	return err
}

func logLines(r io.ReadCloser, logger *slog.Logger, level slog.Level, source string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		logger.Log(context.Background(), level, sc.Text(), "source", source)
	}
}
