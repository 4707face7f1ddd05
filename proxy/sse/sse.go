// Package sse reads and writes Server-Sent Events (text/event-stream), the
// framing that OpenAI-compatible providers use for streamed completions.
//
// The Reader follows the WHATWG event-stream parsing rules with two
// deliberate differences that suit a proxy better than a browser: an event
// still pending when the stream ends is returned rather than dropped, and an
// event's ID is the id field of that event only (it is not carried forward to
// later events; callers that resume streams track the last ID themselves).
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxEventSize is the limit on one line and on one event's data that a
// Reader applies when MaxEventSize is zero.
const DefaultMaxEventSize = 1 << 20

// ErrTooLarge is returned (wrapped) by Reader.Next when a line or the data of
// an event exceeds the reader's limit.
var ErrTooLarge = errors.New("sse: event too large")

// Event is one dispatched event.
type Event struct {
	// Name is the value of the event field; empty when the event had none
	// (browsers call that type "message").
	Name string
	// Data is the event's data lines joined by "\n". It belongs to the
	// caller; the Reader does not reuse it.
	Data []byte
	// ID is the value of the event's last id field, empty if it had none.
	ID string
}

// Reader parses events from a stream. It is not safe for concurrent use.
type Reader struct {
	// MaxEventSize bounds the length of one line and of one event's data, in
	// bytes; 0 means DefaultMaxEventSize. Set it before the first Next.
	MaxEventSize int

	br      *bufio.Reader
	line    []byte // a line that spans more than the buffered bytes
	data    []byte // data of the pending event
	name    string
	id      string
	hasData bool // the pending event has at least one data field
	skipLF  bool // the last line ended in CR; a following LF belongs to it
	started bool // the optional byte order mark has been handled
	err     error
}

// NewReader returns a Reader that reads events from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReader(r)}
}

func (r *Reader) limit() int {
	if r.MaxEventSize > 0 {
		return r.MaxEventSize
	}
	return DefaultMaxEventSize
}

// Next returns the next event. At the end of the stream it returns the
// pending event, if any, and then io.EOF. Other read errors are returned as
// they are; an error wrapping ErrTooLarge ends the stream. After an error every
// later call returns the same error.
func (r *Reader) Next() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	if !r.started {
		r.started = true
		r.skipBOM()
	}
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && r.hasData {
				// Keep the last event of a stream without a final blank line.
				r.err = io.EOF
				return r.dispatch(), nil
			}
			r.err = err
			return Event{}, err
		}
		if len(line) == 0 {
			if r.hasData {
				return r.dispatch(), nil
			}
			r.name, r.id = "", ""
			continue
		}
		if err := r.field(line); err != nil {
			r.err = err
			return Event{}, err
		}
	}
}

// skipBOM drops a UTF-8 byte order mark at the start of the stream.
func (r *Reader) skipBOM() {
	if b, err := r.br.Peek(3); err == nil && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		_, _ = r.br.Discard(3)
	}
}

// readLine returns the next line without its terminator (CRLF, LF or CR).
// The slice is valid until the next read. At the end of the stream a final
// unterminated line is returned first, then io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				if err == io.EOF && len(r.line) > 0 {
					return r.line, nil
				}
				if err == io.EOF && r.skipLF {
					r.skipLF = false
				}
				return nil, err
			}
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		if r.skipLF {
			r.skipLF = false
			if buf[0] == '\n' {
				_, _ = r.br.Discard(1)
				continue
			}
		}
		i := indexLineBreak(buf)
		if i < 0 {
			if len(r.line)+len(buf) > r.limit() {
				return nil, r.tooLarge("line")
			}
			r.line = append(r.line, buf...)
			_, _ = r.br.Discard(len(buf))
			continue
		}
		if len(r.line)+i > r.limit() {
			return nil, r.tooLarge("line")
		}
		r.skipLF = buf[i] == '\r'
		var line []byte
		if len(r.line) == 0 {
			line = buf[:i] // no copy; valid until the next read
		} else {
			r.line = append(r.line, buf[:i]...)
			line = r.line
		}
		_, _ = r.br.Discard(i + 1)
		return line, nil
	}
}

// field applies one non-empty line to the pending event.
func (r *Reader) field(line []byte) error {
	if line[0] == ':' {
		return nil // comment
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		n := len(r.data) + len(value)
		if r.hasData {
			n++
		}
		if n > r.limit() {
			return r.tooLarge("event data")
		}
		if r.hasData {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.hasData = true
	case "event":
		if string(value) != r.name {
			r.name = string(value)
		}
	case "id":
		if bytes.IndexByte(value, 0) < 0 && string(value) != r.id {
			r.id = string(value)
		}
	}
	// retry and unknown fields are ignored.
	return nil
}

func (r *Reader) dispatch() Event {
	ev := Event{Name: r.name, Data: bytes.Clone(r.data), ID: r.id}
	if ev.Data == nil {
		ev.Data = []byte{}
	}
	r.data = r.data[:0]
	r.name, r.id, r.hasData = "", "", false
	return ev
}

func (r *Reader) tooLarge(what string) error {
	return fmt.Errorf("%w: %s longer than %d bytes (raise Reader.MaxEventSize if the upstream sends larger events)", ErrTooLarge, what, r.limit())
}

const (
	dataPrefix  = "data: "
	eventPrefix = "event: "
	idPrefix    = "id: "
	doneEvent   = "data: [DONE]\n\n"
)

// WriteData writes data as one event: "data: <data>\n\n". Line breaks in data
// (CRLF, LF or CR) start a new data line, so a Reader returns the data with
// every line break turned into "\n". Writes are not buffered; wrap w in a
// bufio.Writer, or use an http.ResponseWriter, when that matters.
func WriteData(w io.Writer, data []byte) error {
	if err := writeData(w, data); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteDone writes the OpenAI end-of-stream marker "data: [DONE]\n\n".
func WriteDone(w io.Writer) error {
	_, err := io.WriteString(w, doneEvent)
	return err
}

// WriteEvent writes ev with its id and event fields, when set, and its data as
// WriteData does. Name and ID must not contain line breaks, since the format
// cannot carry them.
func WriteEvent(w io.Writer, ev Event) error {
	for _, f := range [...]struct {
		prefix, value, what string
	}{{idPrefix, ev.ID, "id"}, {eventPrefix, ev.Name, "name"}} {
		if f.value == "" {
			continue
		}
		if i := strings.IndexAny(f.value, "\r\n"); i >= 0 {
			return fmt.Errorf("sse: event %s %q has a line break at byte %d; remove it", f.what, f.value, i)
		}
		if _, err := io.WriteString(w, f.prefix+f.value+"\n"); err != nil {
			return err
		}
	}
	return WriteData(w, ev.Data)
}

func writeData(w io.Writer, data []byte) error {
	for {
		i := indexLineBreak(data)
		line := data
		if i >= 0 {
			line = data[:i]
		}
		if _, err := io.WriteString(w, dataPrefix); err != nil {
			return err
		}
		if len(line) > 0 {
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
		if i < 0 {
			return nil
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// indexLineBreak returns the index of the first CR or LF in b, or -1. Two
// IndexByte scans beat one IndexAny, which does not use vector instructions.
func indexLineBreak(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	head := b
	if i >= 0 {
		head = b[:i]
	}
	if j := bytes.IndexByte(head, '\r'); j >= 0 {
		return j
	}
	return i
}
