package redistest_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/quota/redistest"
)

func TestStartStop(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	if s.Dir == "" {
		t.Errorf("Dir is empty")
	}
	if got, err := roundTrip(s.Addr, "PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING: got %q, %v; want +PONG", got, err)
	}
	if got, err := roundTrip(s.Addr, "CONFIG GET save"); err != nil || !strings.HasPrefix(got, "*2") {
		t.Fatalf("CONFIG GET save: got %q, %v", got, err)
	}
	s.Stop()
	if _, err := roundTrip(s.Addr, "PING"); err == nil {
		t.Errorf("PING after Stop: got no error, want connection refused")
	}
	s.Stop() // idempotent
}

func TestStartTwo(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("both servers on %s", a.Addr)
	}
	for _, s := range []*redistest.Server{a, b} {
		if got, err := roundTrip(s.Addr, "PING"); err != nil || got != "+PONG" {
			t.Errorf("PING %s: got %q, %v; want +PONG", s.Addr, got, err)
		}
	}
}

func roundTrip(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
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
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}
