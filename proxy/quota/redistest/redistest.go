// Package redistest starts a private redis-server for a test, like
// net/http/httptest starts an HTTP server: on a free loopback port, with its
// files in the test's temporary directory, stopped when the test ends.
// StartCluster starts a three-master Redis Cluster the same way.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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
	bin  string
	port int
	args []string // extra arguments, e.g. cluster mode

	mu      sync.Mutex
	pid     int
	running bool
}

// Start runs redis-server on a free port of 127.0.0.1 without persistence,
// waits until it answers PING and registers its shutdown with t.Cleanup.
// A missing redis-server fails the test, naming the Debian package.
func Start(t testing.TB) *Server {
	t.Helper()
	return startServer(t, nil)
}

// startServer starts a server; extra, when not nil, returns more arguments
// for the server's directory (it may pick more ports).
func startServer(t testing.TB, extra func(dir string) ([]string, error)) *Server {
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
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, tb: t, bin: bin, port: port}
		if extra != nil {
			if s.args, err = extra(dir); err != nil {
				t.Fatalf("redistest: %v", err)
			}
		}
		err = s.start()
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("redistest: start redis-server: %v", errors.Join(errs...))
	return nil
}

// start runs the server on s.port in s.Dir and waits for its PONG.
func (s *Server) start() error {
	pidFile := filepath.Join(s.Dir, "redis.pid")
	logFile := filepath.Join(s.Dir, "redis.log")
	_ = os.Remove(pidFile)
	// Only what this run logs counts when looking for bind errors.
	var logStart int
	if b, err := os.ReadFile(logFile); err == nil {
		logStart = len(b)
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "yes",
		"--pidfile", pidFile,
		"--logfile", logFile,
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", cmd, err, bytes.TrimSpace(out))
	}

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		log, _ := os.ReadFile(logFile)
		if len(log) >= logStart {
			log = log[logStart:]
		}
		if bytes.Contains(log, []byte("Address already in use")) {
			return fmt.Errorf("port %d taken: %s", s.port, lastLines(log, 3))
		}
		if ping(s.Addr) == nil {
			// Our server writes its pidfile once it listens; a PONG without
			// it would come from another process that took the port.
			pid, err := readPID(pidFile)
			if err != nil {
				return fmt.Errorf("PONG from %s but %w", s.Addr, err)
			}
			s.mu.Lock()
			s.pid, s.running = pid, true
			s.mu.Unlock()
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			if pid, err := readPID(pidFile); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return fmt.Errorf("no PONG from %s within %s; log: %s", s.Addr, startTimeout, lastLines(log, 5))
		}
	}
}

// Stop shuts the server down and waits until the process is gone; a test may
// call it to simulate Redis going down. It is safe to call more than once.
func (s *Server) Stop() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	if err := stopPID(s.pid); err != nil {
		s.tb.Errorf("redistest: stop redis-server %s (pid %d): %v", s.Addr, s.pid, err)
	}
}

// Restart starts the server again on the same address and directory, empty
// (nothing is persisted), as after a crash: clients that reconnect find it
// where it was. A running server is stopped first. The test fails when the
// port was taken in between.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.tb.Fatalf("redistest: restart redis-server on %s: %v", s.Addr, err)
	}
}

// Cluster is a running Redis Cluster of three masters without replicas.
type Cluster struct {
	// Addrs are host:port of the three nodes; any of them seeds a client.
	Addrs []string
	// Nodes are the servers, e.g. to stop one.
	Nodes []*Server
}

// clusterNodes is the size of the cluster StartCluster creates, the smallest
// that redis-cli --cluster create accepts.
const clusterNodes = 3

// StartCluster starts three redis-server in cluster mode on free loopback
// ports, each in its own directory, joins them with redis-cli --cluster
// create (slots split evenly, no replicas), waits until every node reports
// cluster_state:ok with all slots assigned, and registers the shutdown of all
// of them with t.Cleanup. A missing redis-cli fails the test, naming the
// Debian package.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest: %v; install the Debian package redis-tools (apt-get install -y redis-server)", err)
	}
	c := &Cluster{}
	for range clusterNodes {
		s := startServer(t, func(dir string) ([]string, error) {
			// An explicit bus port: the default, port+10000, may be above
			// 65535 or taken.
			bus, err := freePort()
			if err != nil {
				return nil, err
			}
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-node-timeout", "5000",
			}, nil
		})
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.Command(cli, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redistest: %s: %v: %s", cmd, err, lastLines(out, 5))
	}
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := c.ready()
		if err == nil {
			return c
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("redistest: cluster %v not ready within %s: %v", c.Addrs, startTimeout, err)
		}
	}
}

// ready reports nil when every node sees the whole cluster: state ok, all
// 16384 slots served, every node known.
func (c *Cluster) ready() error {
	for _, addr := range c.Addrs {
		info, err := command(addr, "CLUSTER INFO")
		if err != nil {
			return err
		}
		for _, want := range []string{
			"cluster_state:ok",
			"cluster_slots_ok:16384",
			"cluster_known_nodes:" + strconv.Itoa(len(c.Addrs)),
		} {
			if !strings.Contains(info, want) {
				return fmt.Errorf("%s: CLUSTER INFO lacks %s", addr, want)
			}
		}
	}
	return nil
}

// command sends an inline command and returns a simple or bulk string reply.
func command(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("%s: bad bulk length %q", cmd, line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("%s: reply %q", cmd, line)
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
