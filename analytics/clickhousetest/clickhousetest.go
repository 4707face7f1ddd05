// Package clickhousetest starts a private clickhouse-server for tests, the
// way net/http/httptest starts an HTTP server: in a temporary folder, on free
// loopback ports, stopped when the test ends.
//
// The server binary comes from the Debian package clickhouse-server. When it
// is missing, Start fails the test (it never skips) and names the package to
// install.
package clickhousetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// InstallHint tells how to get the server binary on Debian.
const InstallHint = "apt-get install -y clickhouse-server clickhouse-client"

const (
	binary = "clickhouse-server"
	// bindAttempts bounds retries when another process takes a port between
	// probing it and the server binding it.
	bindAttempts = 5
	readyTimeout = 60 * time.Second
	pollInterval = 50 * time.Millisecond
	stopTimeout  = 15 * time.Second
)

// Server is a running clickhouse-server owned by one test or test binary.
type Server struct {
	// Addr is the native-protocol address, host:port.
	Addr string
	// HTTPAddr is the HTTP interface address, host:port.
	HTTPAddr string
	// Dir holds config, data and logs of this server.
	Dir string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	err    error         // result of cmd.Wait, valid after exited is closed
}

// Start starts a server in t.TempDir() and stops it in t.Cleanup. It fails
// the test if clickhouse-server is not installed or does not become ready.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start(t.TempDir())
	if err != nil {
		t.Fatalf("clickhousetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("clickhousetest: %v", err)
		}
	})
	return s
}

// StartMain starts a server in a new temporary folder for sharing across
// the tests of a package, typically from TestMain. The returned function
// stops the server and removes the folder; call it before os.Exit.
func StartMain() (*Server, func() error, error) {
	dir, err := os.MkdirTemp("", "clickhousetest-")
	if err != nil {
		return nil, nil, fmt.Errorf("create temp dir: %w", err)
	}
	s, err := start(dir)
	if err != nil {
		return nil, nil, errors.Join(err, os.RemoveAll(dir))
	}
	stop := func() error {
		return errors.Join(s.Stop(), os.RemoveAll(dir))
	}
	return s, stop, nil
}

// start launches the server in dir, retrying with new ports when a port
// was taken in the meantime.
func start(dir string) (*Server, error) {
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH (hint: %s): %w", binary, InstallHint, err)
	}
	var errs []error
	for attempt := range bindAttempts {
		s, err := startOnce(path, filepath.Join(dir, "run"+strconv.Itoa(attempt)))
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

var errAddrInUse = errors.New("address already in use")

func startOnce(bin, dir string) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	if err := writeConfig(dir, ports[0], ports[1]); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return nil, fmt.Errorf("create stdout log: %w", err)
	}
	defer out.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
		Dir:      dir,
		cmd:      cmd,
		exited:   make(chan struct{}),
	}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		return nil, errors.Join(err, s.Stop())
	}
	return s, nil
}

// waitReady polls until a native connection answers SELECT 1, the process
// exits, or the deadline passes.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{s.Addr},
		DialTimeout: time.Second,
	})
	if err != nil {
		return fmt.Errorf("open client for %s: %w", s.Addr, err)
	}
	defer conn.Close()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		var one uint8
		last = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		if last == nil {
			return nil
		}
		select {
		case <-s.exited:
			log := s.errorLog()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("server in %s: %w", s.Dir, errAddrInUse)
			}
			return fmt.Errorf("server in %s exited before ready (%v); error log:\n%s", s.Dir, s.err, log)
		case <-ctx.Done():
			return fmt.Errorf("server at %s not ready after %s: %w; error log:\n%s", s.Addr, readyTimeout, last, s.errorLog())
		case <-tick.C:
		}
	}
}

// Stop terminates the server: SIGTERM, then SIGKILL if it has not exited
// within a deadline. It is safe to call more than once.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop server %s: %w", s.Addr, err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
		return nil
	case <-timer.C:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill server %s: %w", s.Addr, err)
	}
	<-s.exited
	return fmt.Errorf("server %s ignored SIGTERM for %s; killed", s.Addr, stopTimeout)
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it
// to exit. Resume starts it again on its data.
func (s *Server) Kill() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill server %s: %w", s.Addr, err)
	}
	<-s.exited
	return nil
}

// Restart stops the server and starts it again on the same ports with the
// same data, as an operator restarting ClickHouse would: tests use it to
// take ClickHouse away from a writer and give it back.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Resume()
}

// Resume starts a stopped server again on the same ports with the same
// data. Between Stop and Resume, clients get connection errors.
func (s *Server) Resume() error {
	select {
	case <-s.exited:
	default:
		return fmt.Errorf("resume server %s: still running", s.Addr)
	}
	out, err := os.OpenFile(filepath.Join(s.Dir, "stdout.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open stdout log: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restart %s: %w", s.cmd.Path, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	exited := s.exited
	go func() {
		s.err = cmd.Wait()
		close(exited)
	}()
	if err := s.waitReady(); err != nil {
		return errors.Join(err, s.Stop())
	}
	return nil
}

// errorLog returns the tail of the server's error log, for failure messages.
func (s *Server) errorLog() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "server.err.log"))
	if err != nil {
		b, _ = os.ReadFile(filepath.Join(s.Dir, "stdout.log"))
	}
	const tail = 4096
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return string(bytes.TrimSpace(b))
}

// freePorts returns n distinct ports that were free a moment ago. Holding all
// listeners until the end keeps the kernel from returning the same port twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("probe free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeConfig(dir string, tcpPort, httpPort int) error {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", sub, err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	config := fmt.Sprintf(configXML,
		p("server.log"), p("server.err.log"),
		tcpPort, httpPort,
		p("data")+"/", p("tmp")+"/", p("user_files")+"/", p("format_schemas")+"/",
		p("users.xml"))
	if err := os.WriteFile(p("config.xml"), []byte(config), 0o644); err != nil {
		return fmt.Errorf("write config.xml: %w", err)
	}
	if err := os.WriteFile(p("users.xml"), []byte(usersXML), 0o644); err != nil {
		return fmt.Errorf("write users.xml: %w", err)
	}
	return nil
}

// configXML uses the <yandex> root, which 18.16 requires and current
// releases still accept.
const configXML = `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>%s</log>
        <errorlog>%s</errorlog>
        <size>10M</size>
        <count>1</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%d</tcp_port>
    <http_port>%d</http_port>
    <path>%s</path>
    <tmp_path>%s</tmp_path>
    <user_files_path>%s</user_files_path>
    <format_schema_path>%s</format_schema_path>
    <users_config>%s</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
`

const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <!-- Idle connections notice a shutdown within this many seconds. -->
            <poll_interval>1</poll_interval>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
