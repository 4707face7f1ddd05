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

func TestRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	if got, err := roundTrip(s.Addr, "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET: got %q, %v; want +OK", got, err)
	}
	s.Stop()
	if _, err := roundTrip(s.Addr, "PING"); err == nil {
		t.Fatalf("PING after Stop: got no error, want connection refused")
	}
	s.Restart()
	if got, err := roundTrip(s.Addr, "PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING after Restart: got %q, %v; want +PONG", got, err)
	}
	// Nothing is persisted: the restarted server is empty.
	if got, err := roundTrip(s.Addr, "EXISTS k"); err != nil || got != ":0" {
		t.Errorf("EXISTS k after Restart: got %q, %v; want :0", got, err)
	}
	s.Restart() // restarting a running server works too
	if got, err := roundTrip(s.Addr, "PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING after second Restart: got %q, %v; want +PONG", got, err)
	}
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	if len(c.Addrs) != 3 || len(c.Nodes) != 3 {
		t.Fatalf("got %d addrs and %d nodes, want 3 each", len(c.Addrs), len(c.Nodes))
	}
	for _, addr := range c.Addrs {
		got, err := roundTrip(addr, "CLUSTER MYID")
		if err != nil || !strings.HasPrefix(got, "$40") {
			t.Errorf("CLUSTER MYID on %s: got %q, %v; want a 40-character id", addr, got, err)
		}
	}
	// Keys of different slots live on different nodes: a node answers
	// MOVED for a key it does not own. {a}, {b}, {c} hash to slots 15495,
	// 3300 and 7365, one per third of the slot space.
	moved := 0
	for _, key := range []string{"{a}x", "{b}x", "{c}x"} {
		got, err := roundTrip(c.Addrs[0], "GET "+key)
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		if strings.HasPrefix(got, "-MOVED") {
			moved++
		}
	}
	if moved != 2 {
		t.Errorf("node %s answered MOVED for %d of 3 keys in three thirds of the slots, want 2", c.Addrs[0], moved)
	}
}
