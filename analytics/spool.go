package analytics

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The spool is an append-only journal of records on local disk, one per
// log (inference, decision), in its own folder:
//
//	<dir>/<log>/LOCK                   flock: one process per folder
//	<dir>/<log>/00000000000000000001.seg  segments, numbered in write order
//	<dir>/<log>/cursor                 where shipping stopped (seq, offset)
//
// A segment is a sequence of frames. Each frame holds the records one
// journal write took from the queue, encoded as a JSON array:
//
//	offset  size  field
//	0       4     magic "TGSP"
//	4       4     payload length, little endian
//	8       4     record count, little endian
//	12      4     CRC-32C (Castagnoli) of bytes 4..12 and of the payload
//	16      n     payload: JSON array of records
//
// One write(2) call appends a whole frame, so once it returns the frame
// survives a crash of the process (kill -9); surviving a crash of the
// machine depends on the fsync policy (SpoolConfig.Fsync). A frame whose
// checksum does not match (a torn tail after a power loss, a damaged
// disk) is skipped with an error log; reading resumes at the next magic
// whose frame checks out, so one bad frame costs only its own records.
//
// The cursor file records, after every shipped batch, the position up to
// which records are in ClickHouse. It is written without fsync: a stale
// cursor only replays records again, which the exact queries count once.
// Segments wholly behind the cursor are deleted.

// SpoolConfig is the analytics.writer.spool section: the disk journal
// every event passes through when Dir is set. See DESIGN.md and
// spool.go for the format.
type SpoolConfig struct {
	// Dir holds the spool, one folder per log. Empty disables the spool:
	// events then live only in memory and a batch that fails MaxAttempts
	// inserts is dropped.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool on disk; beyond it new events are dropped,
	// counted (reason="spool_full") and logged as errors. Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file is closed and a new
	// one started; shipped segments are deleted whole. Default 16 MiB.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// Fsync says when journal writes are forced to the disk:
	//   always:   after every write, before the events count as spooled
	//             (a machine crash loses nothing written);
	//   interval: every FsyncInterval and when a segment is closed
	//             (a machine crash loses at most FsyncInterval);
	//   never:    left to the kernel.
	// A crash of the gateway process alone loses nothing written with any
	// policy. Default interval.
	Fsync string `yaml:"fsync"`
	// FsyncInterval is the period of the interval policy; default 1s.
	FsyncInterval time.Duration `yaml:"fsync_interval"`
}

// Fsync policies, the values of SpoolConfig.Fsync.
const (
	FsyncAlways   = "always"
	FsyncInterval = "interval"
	FsyncNever    = "never"
)

// Default SpoolConfig values.
const (
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultSpoolSegmentBytes = 16 << 20
	DefaultFsyncInterval     = time.Second
)

func (c SpoolConfig) withDefaults() SpoolConfig {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultSpoolMaxBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSpoolSegmentBytes
	}
	if c.Fsync == "" {
		c.Fsync = FsyncInterval
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = DefaultFsyncInterval
	}
	return c
}

// Validate reports every problem in c; zero fields count as their defaults.
func (c SpoolConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("analytics.writer.spool.max_bytes: %d is negative; use a size in bytes or 0 for the default (1 GiB)", c.MaxBytes))
	}
	if c.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("analytics.writer.spool.segment_bytes: %d is negative; use a size in bytes or 0 for the default (16 MiB)", c.SegmentBytes))
	}
	if c.SegmentBytes > 0 && c.MaxBytes > 0 && c.SegmentBytes > c.MaxBytes {
		errs = append(errs, fmt.Errorf("analytics.writer.spool.segment_bytes: %d exceeds max_bytes %d", c.SegmentBytes, c.MaxBytes))
	}
	switch c.Fsync {
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		errs = append(errs, fmt.Errorf("analytics.writer.spool.fsync: invalid policy %q (want %q, %q or %q)", c.Fsync, FsyncAlways, FsyncInterval, FsyncNever))
	}
	if c.FsyncInterval < 0 {
		errs = append(errs, fmt.Errorf("analytics.writer.spool.fsync_interval: %s is negative; use a duration such as \"1s\"", c.FsyncInterval))
	}
	return errors.Join(errs...)
}

const (
	frameMagic     = "TGSP"
	frameHeaderLen = 16
	// maxFramePayload bounds a frame read back, so a damaged length field
	// cannot make the reader allocate gigabytes.
	maxFramePayload = 256 << 20
	segmentSuffix   = ".seg"
	cursorFile      = "cursor"
	lockFile        = "LOCK"
	// cursorLen: committed seq and offset, intent seq and offset, CRC.
	cursorLen = 36
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errSpoolFull is returned by append when the frame would pass MaxBytes.
var errSpoolFull = errors.New("spool full")

// spoolPos is a position in the spool: a segment and a byte offset in it.
type spoolPos struct {
	seq uint64
	off int64
}

func (p spoolPos) less(q spoolPos) bool {
	return p.seq < q.seq || p.seq == q.seq && p.off < q.off
}

type segment struct {
	seq    uint64
	size   int64 // bytes of complete frames (file size for recovered segments)
	sealed bool  // no more writes; deletable once shipped
	// recovered marks segments left by an earlier process.
	recovered bool
}

// spool is the journal of one log. One goroutine appends (the writer's
// journal loop), one reads and commits (its ship loop); the mutex guards
// what both see.
type spool[T any] struct {
	dir  string
	cfg  SpoolConfig
	log  *slog.Logger
	lock *os.File

	mu      sync.Mutex
	segs    []*segment // ascending seq
	end     spoolPos   // after the last frame appended (or found at open)
	bytes   int64      // total size of segs
	nextSeq uint64

	// Owned by the appender.
	active *os.File
	dirty  bool // written since the last fsync
	enc    bytes.Buffer

	// Owned by the reader.
	rf     *os.File
	rseq   uint64
	cursor *os.File
	start  spoolPos // where shipping starts, from the cursor at open
	// intent, when after start, is where the batch in flight at the last
	// run's end stopped: the first batch stops there again.
	intent spoolPos
	// recoveredEnd is the end of what an earlier run left.
	recoveredEnd spoolPos

	pending  atomic.Int64  // records journaled and not yet committed
	recovery atomic.Int64  // records in recovered segments not yet committed
	notify   chan struct{} // 1-buffered: something was appended
	// onCorrupt, when set, is called with the size of each range skipped
	// as corrupt.
	onCorrupt func(n int64)
}

// openSpool opens or creates the spool in dir, locks it against other
// processes and scans what an earlier process left: those records are
// pending and will be shipped first.
func openSpool[T any](dir string, cfg SpoolConfig, log *slog.Logger) (*spool[T], error) {
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, errors.Join(fmt.Errorf("spool %s: locked by another process (hint: give each gateway its own analytics.writer.spool.dir): %w", dir, err), lf.Close())
	}
	s := &spool[T]{dir: dir, cfg: cfg, log: log, lock: lf, nextSeq: 1, notify: make(chan struct{}, 1)}
	if err := s.recover(); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return s, nil
}

// recover lists the segments on disk, drops those wholly behind the
// cursor and counts the valid records ahead of it.
func (s *spool[T]) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || seq == 0 {
			s.log.Warn("analytics spool: ignoring unknown file", slog.String("file", filepath.Join(s.dir, name)))
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("spool %s: %w", s.dir, err)
		}
		s.segs = append(s.segs, &segment{seq: seq, size: info.Size(), sealed: true, recovered: true})
		s.nextSeq = max(s.nextSeq, seq+1)
	}
	slices.SortFunc(s.segs, func(a, b *segment) int {
		if a.seq < b.seq {
			return -1
		}
		return 1
	})
	cf, err := os.OpenFile(filepath.Join(s.dir, cursorFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.dir, err)
	}
	s.cursor = cf
	start, intent := s.readCursor()
	s.start = start
	if start.less(intent) {
		s.intent = intent
	}
	s.end = start
	// New segments must sort after the cursor, or the reader would
	// never reach them.
	s.nextSeq = max(s.nextSeq, start.seq+1)
	var records int64
	kept := s.segs[:0]
	for _, seg := range s.segs {
		if seg.seq < start.seq {
			if err := os.Remove(s.segPath(seg.seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: remove shipped segment: %w", err)
			}
			continue
		}
		from := int64(0)
		if seg.seq == start.seq {
			from = start.off
		}
		n, err := s.countRecords(seg, from)
		if err != nil {
			return err
		}
		records += n
		s.bytes += seg.size
		kept = append(kept, seg)
	}
	s.segs = kept
	if len(kept) > 0 {
		if last := kept[len(kept)-1]; s.end.less(spoolPos{seq: last.seq, off: last.size}) {
			s.end = spoolPos{seq: last.seq, off: last.size}
		}
	}
	s.recoveredEnd = s.end
	s.pending.Store(records)
	s.recovery.Store(records)
	if records > 0 {
		s.log.Info("analytics spool: replaying records left by an earlier run",
			slog.String("dir", s.dir), slog.Int64("records", records), slog.Int("segments", len(s.segs)))
	}
	return nil
}

// readCursor returns the committed position in the cursor file, or the
// start of the oldest segment when the file is empty or damaged, and the
// end of the batch that was being inserted when the file was written.
func (s *spool[T]) readCursor() (committed, intent spoolPos) {
	var oldest spoolPos
	if len(s.segs) > 0 {
		oldest = spoolPos{seq: s.segs[0].seq}
	}
	var b [cursorLen]byte
	n, err := s.cursor.ReadAt(b[:], 0)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return oldest, spoolPos{}
	}
	if n != cursorLen || crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		s.log.Error("analytics spool: cursor file damaged; replaying every segment (duplicates are counted once by the queries)",
			slog.String("file", filepath.Join(s.dir, cursorFile)))
		return oldest, spoolPos{}
	}
	p := spoolPos{seq: binary.LittleEndian.Uint64(b[:8]), off: int64(binary.LittleEndian.Uint64(b[8:16]))}
	intent = spoolPos{seq: binary.LittleEndian.Uint64(b[16:24]), off: int64(binary.LittleEndian.Uint64(b[24:32]))}
	if p.less(oldest) {
		p = oldest
	}
	return p, intent
}

// writeCursor saves the committed position and the end of the batch
// being inserted. It does not fsync: a stale cursor replays records,
// which the queries count once.
func (s *spool[T]) writeCursor(committed, intent spoolPos) {
	var b [cursorLen]byte
	binary.LittleEndian.PutUint64(b[:8], committed.seq)
	binary.LittleEndian.PutUint64(b[8:16], uint64(committed.off))
	binary.LittleEndian.PutUint64(b[16:24], intent.seq)
	binary.LittleEndian.PutUint64(b[24:32], uint64(intent.off))
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	if _, err := s.cursor.WriteAt(b[:], 0); err != nil {
		s.log.Warn("analytics spool: save cursor; shipped records may be replayed after a restart", slog.Any("err", err))
	}
}

// intentBefore records, before a batch is first tried, that the batch
// from committed ends at end: after a crash the first batch then ends
// there again, so the repeated insert is the identical block, which
// Replicated tables deduplicate.
func (s *spool[T]) intentBefore(committed, end spoolPos) {
	s.writeCursor(committed, end)
}

// countRecords counts the records of the valid frames of seg from off.
func (s *spool[T]) countRecords(seg *segment, off int64) (int64, error) {
	f, err := os.Open(s.segPath(seg.seq))
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	var n int64
	for off < seg.size {
		count, next, _, ok := readFrame[T](f, off, seg.size, nil, false)
		if !ok {
			break
		}
		n += int64(count)
		off = next
	}
	return n, nil
}

func (s *spool[T]) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segmentSuffix))
}

// append journals records as one frame and returns where the frame
// starts and ends. It returns errSpoolFull when the frame would pass
// MaxBytes, and leaves nothing half-written in the counters when the write
// fails. Call signal afterwards to wake the reader.
func (s *spool[T]) append(records []T) (start, end spoolPos, err error) {
	s.enc.Reset()
	s.enc.Write(make([]byte, frameHeaderLen))
	if err := json.NewEncoder(&s.enc).Encode(records); err != nil {
		return start, end, fmt.Errorf("spool: encode: %w", err)
	}
	frame := s.enc.Bytes()
	payload := len(frame) - frameHeaderLen
	copy(frame, frameMagic)
	binary.LittleEndian.PutUint32(frame[4:], uint32(payload))
	binary.LittleEndian.PutUint32(frame[8:], uint32(len(records)))
	crc := crc32.Update(crc32.Checksum(frame[4:12], castagnoli), castagnoli, frame[frameHeaderLen:])
	binary.LittleEndian.PutUint32(frame[12:], crc)

	s.mu.Lock()
	full := s.bytes+int64(len(frame)) > s.cfg.MaxBytes
	s.mu.Unlock()
	if full {
		return start, end, errSpoolFull
	}
	seg, err := s.activeSegment(int64(len(frame)))
	if err != nil {
		return start, end, err
	}
	if _, err := s.active.Write(frame); err != nil {
		// A partial write leaves a torn frame the reader skips; keep the
		// counters on complete frames by truncating it away.
		_ = s.active.Truncate(seg.size)
		_, _ = s.active.Seek(seg.size, io.SeekStart)
		return start, end, fmt.Errorf("spool: write %s: %w", s.segPath(seg.seq), err)
	}
	s.dirty = true
	if s.cfg.Fsync == FsyncAlways {
		if err := s.sync(); err != nil {
			return start, end, err
		}
	}
	s.mu.Lock()
	// The frame starts where the previous one ended, even across a new
	// segment: a reader at that end moves on to this frame.
	start = s.end
	seg.size += int64(len(frame))
	s.bytes += int64(len(frame))
	s.end = spoolPos{seq: seg.seq, off: seg.size}
	s.mu.Unlock()
	s.pending.Add(int64(len(records)))
	return start, s.end, nil
}

// signal wakes the reader after appends.
func (s *spool[T]) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// activeSegment returns the segment to append n bytes to, closing the
// current one when it is full and creating a new one when needed.
func (s *spool[T]) activeSegment(n int64) (*segment, error) {
	s.mu.Lock()
	var cur *segment
	if len(s.segs) > 0 && !s.segs[len(s.segs)-1].sealed {
		cur = s.segs[len(s.segs)-1]
	}
	s.mu.Unlock()
	if cur != nil && s.active != nil && (cur.size == 0 || cur.size+n <= s.cfg.SegmentBytes) {
		return cur, nil
	}
	if cur != nil {
		if err := s.seal(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	f, err := os.OpenFile(s.segPath(seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: create segment: %w", err)
	}
	if s.cfg.Fsync == FsyncAlways {
		if err := syncDir(s.dir); err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}
	s.active = f
	seg := &segment{seq: seq}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	return seg, nil
}

// seal closes the active segment, syncing it unless the policy is never.
func (s *spool[T]) seal() error {
	if s.active == nil {
		return nil
	}
	var err error
	if s.cfg.Fsync != FsyncNever {
		err = s.sync()
	}
	err = errors.Join(err, s.active.Close())
	s.active = nil
	s.mu.Lock()
	if len(s.segs) > 0 {
		s.segs[len(s.segs)-1].sealed = true
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	return nil
}

// sync forces the active segment to disk if it was written since.
func (s *spool[T]) sync() error {
	if s.active == nil || !s.dirty {
		return nil
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.dirty = false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: fsync dir: %w", err)
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// read appends to into the records of whole frames from p on, at most
// maxRecords unless the first frame alone has more, and returns them with
// the position after the last frame read. When p is before stop, it does
// not read past stop. Corrupt frames are skipped and logged. It returns no
// records when nothing complete lies beyond p.
func (s *spool[T]) read(p spoolPos, maxRecords int, into []T, stop spoolPos) ([]T, spoolPos, error) {
	limited := p.less(stop)
	n := 0
	for {
		if limited && n > 0 && !p.less(stop) {
			return into, p, nil
		}
		s.mu.Lock()
		var seg *segment
		var next *segment
		for _, sg := range s.segs {
			if sg.seq == p.seq {
				seg = sg
			} else if sg.seq > p.seq {
				next = sg
				break
			}
		}
		var size int64
		var sealed bool
		if seg != nil {
			size, sealed = seg.size, seg.sealed
		}
		s.mu.Unlock()
		if seg == nil || p.off >= size && sealed {
			if next == nil {
				return into, p, nil
			}
			p = spoolPos{seq: next.seq}
			continue
		}
		if p.off >= size {
			return into, p, nil
		}
		f, err := s.readerFile(p.seq)
		if err != nil {
			return into, p, err
		}
		for p.off < size {
			if limited && n > 0 && !p.less(stop) {
				return into, p, nil
			}
			var part []T
			count, nextOff, skipped, ok := readFrame(f, p.off, size, &part, true)
			if skipped > 0 {
				s.log.Error("analytics spool: corrupt or torn record skipped",
					slog.String("segment", s.segPath(p.seq)),
					slog.Int64("offset", p.off),
					slog.Int64("bytes", skipped))
				if s.onCorrupt != nil {
					s.onCorrupt(skipped)
				}
			}
			if !ok {
				p.off = size
				break
			}
			if n > 0 && n+count > maxRecords {
				return into, p, nil
			}
			into = append(into, part...)
			n += count
			p.off = nextOff
			if n >= maxRecords {
				return into, p, nil
			}
		}
		if n > 0 {
			return into, p, nil
		}
	}
}

func (s *spool[T]) readerFile(seq uint64) (*os.File, error) {
	if s.rf != nil && s.rseq == seq {
		return s.rf, nil
	}
	if s.rf != nil {
		_ = s.rf.Close()
		s.rf = nil
	}
	f, err := os.Open(s.segPath(seq))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s.rf, s.rseq = f, seq
	return f, nil
}

// readFrame reads the frame at off (before limit). If the bytes at off do
// not hold a valid frame, it searches forward for the next valid one and
// reports the bytes it skipped. ok is false when no valid frame lies
// before limit. With decode, the records are unmarshalled into *into.
func readFrame[T any](f *os.File, off, limit int64, into *[]T, decode bool) (count int, next, skipped int64, ok bool) {
	start := off
	var hdr [frameHeaderLen]byte
	for off < limit {
		count, next, valid := tryFrame(f, off, limit, hdr[:], into, decode)
		if valid {
			return count, next, off - start, true
		}
		off = nextMagic(f, off+1, limit)
	}
	return 0, limit, limit - start, false
}

// tryFrame checks and, with decode, decodes the frame at off.
func tryFrame[T any](f *os.File, off, limit int64, hdr []byte, into *[]T, decode bool) (int, int64, bool) {
	if limit-off < frameHeaderLen {
		return 0, 0, false
	}
	if _, err := f.ReadAt(hdr, off); err != nil {
		return 0, 0, false
	}
	if string(hdr[:4]) != frameMagic {
		return 0, 0, false
	}
	length := int64(binary.LittleEndian.Uint32(hdr[4:]))
	count := int(binary.LittleEndian.Uint32(hdr[8:]))
	if length > maxFramePayload || off+frameHeaderLen+length > limit {
		return 0, 0, false
	}
	payload := make([]byte, length)
	if _, err := f.ReadAt(payload, off+frameHeaderLen); err != nil {
		return 0, 0, false
	}
	crc := crc32.Update(crc32.Checksum(hdr[4:12], castagnoli), castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(hdr[12:]) {
		return 0, 0, false
	}
	if decode {
		var part []T
		if err := json.Unmarshal(payload, &part); err != nil || len(part) != count {
			return 0, 0, false
		}
		*into = part
	}
	return count, off + frameHeaderLen + length, true
}

// nextMagic returns the offset of the next frame magic at or after off,
// or limit.
func nextMagic(f *os.File, off, limit int64) int64 {
	buf := make([]byte, 64<<10)
	for off < limit {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), limit-off)], off)
		if n <= 0 {
			_ = err
			return limit
		}
		if i := bytes.Index(buf[:n], []byte(frameMagic)); i >= 0 {
			return off + int64(i)
		}
		if int64(n) < int64(len(frameMagic)) {
			return limit
		}
		// Step back so a magic split across reads is found.
		off += int64(n) - int64(len(frameMagic)-1)
		if off+int64(len(frameMagic)) > limit {
			return limit
		}
	}
	return limit
}

// commit records that everything before p, n records, is shipped: it
// saves the cursor and deletes segments wholly behind p. fromRecovery of
// them came from an earlier run.
func (s *spool[T]) commit(p spoolPos, n int64) {
	s.pending.Add(-n)
	if r := s.recovery.Load(); r > 0 {
		s.recovery.Add(-min(r, n))
	}
	s.writeCursor(p, spoolPos{})
	var remove []uint64
	s.mu.Lock()
	kept := s.segs[:0]
	for _, seg := range s.segs {
		if seg.sealed && (seg.seq < p.seq || seg.seq == p.seq && p.off >= seg.size) {
			remove = append(remove, seg.seq)
			s.bytes -= seg.size
			continue
		}
		kept = append(kept, seg)
	}
	s.segs = kept
	s.mu.Unlock()
	for _, seq := range remove {
		if s.rf != nil && s.rseq == seq {
			_ = s.rf.Close()
			s.rf = nil
		}
		if err := os.Remove(s.segPath(seq)); err != nil {
			s.log.Warn("analytics spool: remove shipped segment", slog.Any("err", err))
		}
	}
}

// stats returns the bytes and segment files on disk.
func (s *spool[T]) stats() (bytes int64, segments int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, len(s.segs)
}

// endPos returns the position after the last frame appended.
func (s *spool[T]) endPos() spoolPos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// startPos returns the position shipping starts from: the cursor, or the
// oldest segment.
func (s *spool[T]) startPos() spoolPos {
	return s.start
}

// close syncs and closes the files and releases the lock.
func (s *spool[T]) close() error {
	var errs []error
	if s.active != nil {
		errs = append(errs, s.seal())
	}
	if s.rf != nil {
		errs = append(errs, s.rf.Close())
		s.rf = nil
	}
	if s.cursor != nil {
		errs = append(errs, s.cursor.Close())
		s.cursor = nil
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock
		s.lock = nil
	}
	return errors.Join(errs...)
}
