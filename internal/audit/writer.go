package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and internal limits of the Writer.
const (
	// DefaultQueueSize absorbs about a second of a busy gateway's records
	// (≈ 65k × ~250 B of Record ≈ 16 MiB) while the disk stalls.
	DefaultQueueSize = 65536
	// DefaultFlushInterval bounds how long a write error waits before it is
	// retried; records are otherwise flushed as soon as the queue drains.
	DefaultFlushInterval = 200 * time.Millisecond
	// flushThreshold flushes a batch early while the queue is still busy, so
	// one write(2) never carries more than this.
	flushThreshold = 256 << 10
	// maxPendingBytes is how many formatted bytes the writer holds while the
	// output fails (disk full). Beyond it, it stops taking records, the queue
	// fills and Write blocks: records are held back, never dropped.
	maxPendingBytes = 8 << 20
	// errorLogInterval rate-limits the writer's own error log lines.
	errorLogInterval = 10 * time.Second
)

// Options configures a Writer.
type Options struct {
	// Path is the log file; "-" means standard output (no chain resume, no
	// fsync).
	Path string
	// QueueSize is the capacity of the queue between Write and the
	// background writer; 0 means DefaultQueueSize.
	QueueSize int
	// FlushInterval is the retry period after a write error; 0 means
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Sync fsyncs the file after each flush.
	Sync bool
	// RepairTornTail truncates a torn last line (no trailing newline, as left
	// by a crash) instead of failing Open; a warning is logged.
	RepairTornTail bool
	// Logger receives the writer's own errors; nil means slog.Default().
	Logger *slog.Logger
}

// ErrTornTail is wrapped by Open's error when the file ends in a line without
// a trailing newline and Options.RepairTornTail is not set.
var ErrTornTail = errors.New("torn last line")

// ErrCorruptTail is wrapped by Open's error when the last line of an existing
// file is not a valid record, so the chain cannot be continued.
var ErrCorruptTail = errors.New("last line is not a valid audit record")

// Stats are the Writer's counters.
type Stats struct {
	Written  uint64 // records handed to the OS (fully written)
	Blocked  uint64 // Write calls that found the queue full and waited
	Dropped  uint64 // Write calls after Close, which are discarded
	Errors   uint64 // failed write or fsync attempts
	QueueLen int    // records waiting in the queue
}

// Writer appends hash-chained records to the audit log. Write is safe for
// concurrent use; a single background goroutine formats and writes.
type Writer struct {
	opts Options
	log  *slog.Logger
	out  io.Writer
	file *os.File // nil for standard output or a test hook

	ch      chan Record
	mu      sync.RWMutex // Write holds it shared; Close exclusively, to close ch
	closed  bool
	closing chan struct{} // closed when Close starts: stop holding back
	done    chan struct{} // closed when the background goroutine exits

	closeOnce sync.Once
	closeErr  error

	written, blocked, dropped, errs atomic.Uint64

	// Owned by the background goroutine.
	enc        *encoder
	pending    []byte
	failing    bool
	lastErrLog time.Time
}

// Open opens (creating with mode 0600, appending) the log at opts.Path and
// starts the background writer. When the file already holds records, Open
// checks that the last line is a valid record and continues its chain, so
// restarts keep one chain per file.
func Open(opts Options) (*Writer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Path == "-" {
		return newWriter(opts, os.Stdout, nil, 0, zeroHash), nil
	}
	f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("audit log is readable or writable by others", "path", opts.Path, "mode", fi.Mode().Perm().String())
	}
	seq, prev, err := resumeChain(f, opts.Path, opts.RepairTornTail, opts.Logger)
	if err != nil {
		f.Close()
		return nil, err
	}
	return newWriter(opts, f, f, seq, prev), nil
}

func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Path == "" {
		errs = append(errs, errors.New("audit: path is empty"))
	}
	if o.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("audit: queue size %d is negative", o.QueueSize))
	}
	if o.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("audit: flush interval %s is negative", o.FlushInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// newWriter starts a Writer on out, continuing the chain after seq/prev.
// file, when non-nil, is fsynced and closed; tests pass a hook as out.
func newWriter(opts Options, out io.Writer, file *os.File, seq uint64, prev [hexLen]byte) *Writer {
	w := &Writer{
		opts:    opts,
		log:     opts.Logger,
		out:     out,
		file:    file,
		ch:      make(chan Record, opts.QueueSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		enc:     newEncoder(seq, prev),
	}
	go w.run()
	return w
}

// Write enqueues r. It returns at once while the queue has room; when the
// queue is full it blocks until there is room (an audit record must not be
// lost) and counts that in Stats().Blocked. After Close, r is dropped and
// counted in Stats().Dropped. r.Decisions is copied, so the caller may reuse
// it; a zero r.Time is stamped with the current time.
func (w *Writer) Write(r Record) {
	if len(r.Decisions) > 0 {
		r.Decisions = slices.Clone(r.Decisions[:min(len(r.Decisions), MaxDecisions)])
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(1)
		return
	}
	select {
	case w.ch <- r:
		return
	default:
	}
	w.blocked.Add(1)
	w.ch <- r
}

// Close drains the queue, flushes, fsyncs and closes the file (standard
// output is left open). It is idempotent and returns the same error each time.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		close(w.closing)
		w.mu.Lock()
		w.closed = true
		close(w.ch)
		w.mu.Unlock()
		<-w.done
	})
	return w.closeErr
}

// Stats returns a snapshot of the Writer's counters.
func (w *Writer) Stats() Stats {
	return Stats{
		Written:  w.written.Load(),
		Blocked:  w.blocked.Load(),
		Dropped:  w.dropped.Load(),
		Errors:   w.errs.Load(),
		QueueLen: len(w.ch),
	}
}

// run is the single background goroutine: it formats, hashes and writes.
func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.FlushInterval)
	defer tick.Stop()
	for {
		// While the output fails and too much is held back, stop taking
		// records so that Write blocks instead of memory growing; retry on
		// the tick. Once Close has started, drain regardless.
		if w.failing && len(w.pending) >= maxPendingBytes {
			select {
			case <-tick.C:
				w.flush()
				continue
			case <-w.closing:
			}
		}
		select {
		case r, ok := <-w.ch:
			if !ok {
				w.closeErr = w.finish()
				return
			}
			w.pending = w.enc.append(w.pending, &r)
			if !w.failing && (len(w.ch) == 0 || len(w.pending) >= flushThreshold) {
				w.flush()
			}
		case <-tick.C:
			if len(w.pending) > 0 {
				w.flush()
			}
		}
	}
}

// flush writes the pending bytes, keeping whatever was not written for the
// next attempt (so a partial write on a full disk resumes mid-line), and
// fsyncs when configured.
func (w *Writer) flush() {
	if len(w.pending) == 0 {
		return
	}
	n, err := w.out.Write(w.pending)
	if n > 0 {
		w.written.Add(uint64(bytes.Count(w.pending[:n], []byte{'\n'})))
		w.pending = w.pending[:copy(w.pending, w.pending[n:])]
	}
	if err == nil && len(w.pending) > 0 {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.fail(fmt.Errorf("write: %w", err))
		return
	}
	if w.opts.Sync && w.file != nil {
		if err := w.file.Sync(); err != nil {
			w.fail(fmt.Errorf("fsync: %w", err))
			return
		}
	}
	if w.failing {
		w.failing = false
		w.log.Info("audit log writes recovered", "path", w.opts.Path, "errors", w.errs.Load())
	}
}

// fail counts err and logs it at most once per errorLogInterval.
func (w *Writer) fail(err error) {
	n := w.errs.Add(1)
	w.failing = true
	if now := time.Now(); now.Sub(w.lastErrLog) >= errorLogInterval {
		w.lastErrLog = now
		w.log.Error("audit log write failed; retrying, records are held back",
			"path", w.opts.Path, "err", err, "errors", n, "pending_bytes", len(w.pending))
	}
}

// finish makes the last flush attempt, fsyncs and closes the file.
func (w *Writer) finish() error {
	var errs []error
	if len(w.pending) > 0 {
		if n, err := w.out.Write(w.pending); err != nil || n < len(w.pending) {
			if n > 0 {
				w.written.Add(uint64(bytes.Count(w.pending[:n], []byte{'\n'})))
			}
			w.errs.Add(1)
			lost := w.pending[max(n, 0):]
			errs = append(errs, fmt.Errorf("close audit log %s: %d records (%d bytes) not written: %w",
				w.opts.Path, bytes.Count(lost, []byte{'\n'}), len(lost), cmpErr(err, io.ErrShortWrite)))
		} else {
			w.written.Add(uint64(bytes.Count(w.pending, []byte{'\n'})))
		}
		w.pending = nil
	}
	if w.file != nil {
		if err := w.file.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("close audit log %s: fsync: %w", w.opts.Path, err))
		}
		if err := w.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit log %s: %w", w.opts.Path, err))
		}
	}
	return errors.Join(errs...)
}

func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
