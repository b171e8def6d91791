package e2e

// Redis and Postgres for the queue-mode tests: Debian's redis-server and
// a throwaway Postgres cluster, each on a free loopback port, each in its
// own temporary directory.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/internal/excerpt"
)

// redisServer is a redis-server started with the manifest's arguments.
type redisServer struct {
	*daemon
	args []string // as started, to start it again the same way
	port int
}

// startRedis starts redis-server with args (deploy/kubernetes/redis.yaml's)
// on a loopback port, with its working directory in dir, and waits until
// it answers PING.
func startRedis(ctx context.Context, args []string, port int, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (Debian: apt-get install redis-server): %w", err)
	}
	all := append(slices.Clone(args), "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--daemonize", "no", "--logfile", "")
	cmd := exec.Command(bin, all...)
	cmd.Dir = dir
	d, err := startDaemon("redis-server", cmd)
	if err != nil {
		return nil, err
	}
	r := &redisServer{daemon: d, args: args, port: port}
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	for {
		err := r.ping()
		if err == nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("redis-server not answering PING: %w\n%s", err, excerpt.Of(r.out.String())),
				r.stop(syscall.SIGKILL, time.Second))
		case <-r.exited:
			return nil, fmt.Errorf("redis-server exited: %v\n%s", r.cmd.ProcessState, excerpt.Of(r.out.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping expects PONG to PING.
func (r *redisServer) ping() error {
	reply, err := r.command("PING")
	if err == nil && reply != "PONG" {
		err = fmt.Errorf("PING answered %q", reply)
	}
	return err
}

// command sends one command in Redis's protocol and returns a simple
// string or integer reply.
func (r *redisServer) command(args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), patience)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(patience))
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" || (line[0] != '+' && line[0] != ':') {
		return "", fmt.Errorf("%v answered %q", args, line)
	}
	return line[1:], nil
}

// postgresServer is a Postgres cluster made for one test run.
type postgresServer struct {
	*daemon
	port int
}

// startPostgres creates a cluster in dir whose superuser is pgUser with
// password, starts it on a loopback port, and creates database. Postgres
// refuses to run as root, so when the test runs as root the cluster runs
// as the postgres user (or nobody), which is given dir.
func startPostgres(ctx context.Context, dir, database, pgUser, password string) (*postgresServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	data, pwfile := filepath.Join(dir, "data"), filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	asPostgres := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C"}
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	// Password authentication, as n8n connects in the manifests.
	initdb := asPostgres("initdb", "-D", data, "-U", pgUser, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, excerpt.Of(string(out)))
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d, err := startDaemon("postgres", asPostgres("postgres", "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir))
	if err != nil {
		return nil, err
	}
	pg := &postgresServer{daemon: d, port: port}
	fail := func(err error) (*postgresServer, error) {
		return nil, errors.Join(fmt.Errorf("%w\npostgres output:\n%s", err, excerpt.Of(pg.out.String())), pg.stop())
	}
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	for {
		ready := exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port))
		if ready.Run() == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("postgres not ready within %s", patience))
		case <-pg.exited:
			return fail(fmt.Errorf("postgres exited: %v", pg.cmd.ProcessState))
		case <-time.After(100 * time.Millisecond):
		}
	}
	createdb := exec.CommandContext(ctx, filepath.Join(bin, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgUser, database)
	createdb.Env = []string{"PGPASSWORD=" + password}
	if out, err := createdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("createdb: %w\n%s", err, out))
	}
	return pg, nil
}

// stop is Postgres's fast shutdown: SIGINT ends the sessions and stops.
func (pg *postgresServer) stop() error {
	return pg.daemon.stop(syscall.SIGINT, 30*time.Second)
}

// postgresBinDir finds the directory of Postgres's server programs: on
// PATH, or where Debian's postgresql package puts them.
func postgresBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no initdb on PATH or under /usr/lib/postgresql (Debian: apt-get install postgresql)")
}

// pgVersion is the major version in /usr/lib/postgresql/<version>/bin.
func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// postgresCredential is nil when the test does not run as root, else the
// user Postgres runs as.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and there is no postgres or nobody user to run Postgres as")
}
