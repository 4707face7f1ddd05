// Package redistest starts a private redis-server for a test, like
// net/http/httptest starts an HTTP server: on a free loopback port, with its
// files in the test's temporary directory, stopped when the test ends.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	startTimeout = 10 * time.Second
	stopTimeout  = 10 * time.Second
	pollInterval = 10 * time.Millisecond
	// startAttempts retries on another port when the chosen one was taken
	// between probing and binding.
	startAttempts = 3
)

// Server is a running redis-server.
type Server struct {
	// Addr is host:port to connect to.
	Addr string
	// Dir holds the server's pidfile and log.
	Dir string

	tb   testing.TB
	pid  int
	once sync.Once
}

// Start runs redis-server on a free port of 127.0.0.1 without persistence,
// waits until it answers PING and registers its shutdown with t.Cleanup.
// A missing redis-server fails the test, naming the Debian package.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redistest: %v; install the Debian package redis-server (apt-get install -y redis-server)", err)
	}
	var errs []error
	for i := range startAttempts {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s, err := start(bin, dir)
		if err == nil {
			s.tb = t
			t.Cleanup(s.Stop)
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("redistest: start redis-server: %v", errors.Join(errs...))
	return nil
}

func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir}
	pidFile := filepath.Join(dir, "redis.pid")
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "yes",
		"--pidfile", pidFile,
		"--logfile", logFile,
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmd, err, bytes.TrimSpace(out))
	}

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		log, _ := os.ReadFile(logFile)
		if bytes.Contains(log, []byte("Address already in use")) {
			return nil, fmt.Errorf("port %d taken: %s", port, lastLines(log, 3))
		}
		if ping(s.Addr) == nil {
			// Our server writes its pidfile once it listens; a PONG without
			// it would come from another process that took the port.
			pid, err := readPID(pidFile)
			if err != nil {
				return nil, fmt.Errorf("PONG from %s but %w", s.Addr, err)
			}
			s.pid = pid
			return s, nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			if pid, err := readPID(pidFile); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return nil, fmt.Errorf("no PONG from %s within %s; log: %s", s.Addr, startTimeout, lastLines(log, 5))
		}
	}
}

// Stop shuts the server down and waits until the process is gone; a test may
// call it to simulate Redis going down. It is safe to call more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.tb.Helper()
		if err := stopPID(s.pid); err != nil {
			s.tb.Errorf("redistest: stop redis-server %s (pid %d): %v", s.Addr, s.pid, err)
		}
	})
}

func stopPID(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	if waitExit(pid, stopTimeout) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	if waitExit(pid, stopTimeout) {
		return nil
	}
	return fmt.Errorf("still running %s after SIGKILL", stopTimeout)
}

// waitExit polls until pid is gone or a zombie (the daemon is not our child,
// so we cannot reap it), or timeout passes.
func waitExit(pid int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if !alive(pid) {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return !alive(pid)
		}
	}
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// Field 3, after "pid (comm)", is the state.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	return pid, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
