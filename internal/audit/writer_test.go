package audit

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openFile(t *testing.T, path string, mod func(*Options)) *Writer {
	t.Helper()
	opts := Options{Path: path, Logger: quietLogger()}
	if mod != nil {
		mod(&opts)
	}
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRestartContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w := openFile(t, path, func(o *Options) { o.Sync = true })
	for i := range 3 {
		w.Write(sampleRecord(i))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}

	w = openFile(t, path, nil)
	for i := 3; i < 5; i++ {
		w.Write(sampleRecord(i))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log := readFile(t, path)
	if res := mustVerify(t, log); res != (VerifyResult{Records: 5}) {
		t.Fatalf("Verify = %+v", res)
	}
	for i, l := range splitLines(log) {
		info, reason := checkLine(l)
		if reason != "" || info.seq != uint64(i+1) {
			t.Errorf("line %d: seq %d, %q", i+1, info.seq, reason)
		}
	}
}

func TestOpenTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	full := genLog(3)
	torn := append(bytes.Clone(full), genLog(4)[len(full):len(full)+50]...) // crash mid-line 4
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := Open(Options{Path: path, Logger: quietLogger()})
	if !errors.Is(err, ErrTornTail) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("Open error = %v, want ErrTornTail naming %s line 4", err, path)
	}
	if !bytes.Equal(readFile(t, path), torn) {
		t.Fatal("Open without RepairTornTail changed the file")
	}

	var logs syncBuffer
	w, err := Open(Options{Path: path, RepairTornTail: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open with repair: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "line=4") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	w.Write(sampleRecord(3))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, path)
	if res := mustVerify(t, got); res != (VerifyResult{Records: 4}) {
		t.Fatalf("Verify after repair = %+v", res)
	}
	if !bytes.Equal(got, genLog(4)) {
		t.Errorf("repaired log differs from an uninterrupted one")
	}
}

func TestOpenTornOnlyLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"time":"20`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := openFile(t, path, func(o *Options) { o.RepairTornTail = true })
	w.Write(sampleRecord(0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !bytes.Equal(got, genLog(1)) {
		t.Errorf("got %s", got)
	}
}

func TestOpenCorruptTail(t *testing.T) {
	for name, content := range map[string][]byte{
		"edited":  bytes.Replace(genLog(2), []byte(`"status":200,"latency_ms":1.234,"upstream_latency_ms":0.987,"client":"203.0.113.7:54321","mode":"enforce","upstream":"http://10.0.0.5:8080","retries":1`), []byte(`"status":500,"latency_ms":1.234,"upstream_latency_ms":0.987,"client":"203.0.113.7:54321","mode":"enforce","upstream":"http://10.0.0.5:8080","retries":1`), 1),
		"garbage": append(genLog(2), "not json\n"...),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(Options{Path: path, Logger: quietLogger()})
			if !errors.Is(err, ErrCorruptTail) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open error = %v, want ErrCorruptTail naming the file", err)
			}
			if name == "garbage" && !strings.Contains(err.Error(), "line 3") {
				t.Errorf("error does not name line 3: %v", err)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	_, err := Open(Options{QueueSize: -1, FlushInterval: -time.Second})
	for _, want := range []string{"path is empty", "queue size -1", "flush interval -1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open error = %v, want it to mention %q", err, want)
		}
	}
	if _, err := Open(Options{Path: filepath.Join(t.TempDir(), "missing", "audit.log")}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestStdout(t *testing.T) {
	w, err := Open(Options{Path: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	const goroutines, each = 50, 200
	path := filepath.Join(t.TempDir(), "audit.log")
	w := openFile(t, path, func(o *Options) { o.QueueSize = 64 })
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			decs := []Decision{{Stage: "authn", Action: "allow"}}
			for i := range each {
				r := sampleRecord(g*each + i)
				decs[0].Reason = "ok"
				r.Decisions = decs
				w.Write(r)
				decs[0].Reason = "reused slice" // Write must have copied it
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Written != goroutines*each || st.Dropped != 0 || st.Errors != 0 || st.QueueLen != 0 {
		t.Errorf("Stats = %+v", st)
	}
	log := readFile(t, path)
	if res := mustVerify(t, log); res != (VerifyResult{Records: goroutines * each}) {
		t.Fatalf("Verify = %+v", res)
	}
	if bytes.Contains(log, []byte("reused slice")) {
		t.Error("a caller's later change to Decisions leaked into the log")
	}
}

// gatedWriter blocks every Write until release is closed.
type gatedWriter struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
	out     syncBuffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return g.out.Write(p)
}

func TestWriteBlocksWhenQueueFull(t *testing.T) {
	g := &gatedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	w := newWriter(Options{Path: "test", QueueSize: 1, FlushInterval: time.Hour, Logger: quietLogger()}, g, nil, 0, zeroHash)

	w.Write(sampleRecord(0)) // taken by the writer, which then stalls in g.Write
	<-g.entered
	w.Write(sampleRecord(1)) // fills the queue
	if st := w.Stats(); st.Blocked != 0 || st.QueueLen != 1 {
		t.Fatalf("Stats = %+v, want no block and one queued", st)
	}
	returned := make(chan struct{})
	go func() {
		w.Write(sampleRecord(2)) // must block, not drop
		close(returned)
	}()
	waitFor(t, "Blocked == 1", func() bool { return w.Stats().Blocked == 1 })
	select {
	case <-returned:
		t.Fatal("Write returned while the queue was full")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	<-returned
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Written != 3 || st.Blocked != 1 || st.Dropped != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if res := mustVerify(t, g.out.Bytes()); res != (VerifyResult{Records: 3}) {
		t.Errorf("Verify = %+v", res)
	}
}

func TestWriteAfterCloseDropped(t *testing.T) {
	var out syncBuffer
	w := newWriter(Options{Path: "test", QueueSize: 4, FlushInterval: time.Hour, Logger: quietLogger()}, &out, nil, 0, zeroHash)
	w.Write(sampleRecord(0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	w.Write(sampleRecord(1))
	if st := w.Stats(); st.Written != 1 || st.Dropped != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

// flakyWriter fails its first failures calls, writing half of p each time.
type flakyWriter struct {
	mu       sync.Mutex
	failures int
	out      bytes.Buffer
}

var errDiskFull = errors.New("no space left on device")

func (f *flakyWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		n := len(p) / 2
		f.out.Write(p[:n])
		return n, errDiskFull
	}
	return f.out.Write(p)
}

func (f *flakyWriter) Bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.out.Bytes())
}

func TestWriteErrorsRetried(t *testing.T) {
	var logs syncBuffer
	fw := &flakyWriter{failures: 3}
	w := newWriter(Options{Path: "test", QueueSize: 16, FlushInterval: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, fw, nil, 0, zeroHash)
	for i := range 10 {
		w.Write(sampleRecord(i))
	}
	waitFor(t, "all records written", func() bool { return w.Stats().Written == 10 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Errors != 3 {
		t.Errorf("Stats = %+v, want 3 errors", st)
	}
	if n := strings.Count(logs.String(), "audit log write failed"); n != 1 {
		t.Errorf("%d error log lines in 10s, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "recovered") {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}
	if res := mustVerify(t, fw.Bytes()); res != (VerifyResult{Records: 10}) {
		t.Errorf("Verify after partial writes = %+v", res)
	}
}

func TestCloseReportsUnwritten(t *testing.T) {
	fw := &flakyWriter{failures: 1 << 30}
	w := newWriter(Options{Path: "test", QueueSize: 16, FlushInterval: time.Hour, Logger: quietLogger()}, fw, nil, 0, zeroHash)
	for i := range 5 {
		w.Write(sampleRecord(i))
	}
	err := w.Close()
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "not written") {
		t.Fatalf("Close = %v", err)
	}
	if st := w.Stats(); st.Errors == 0 || st.Written >= 5 {
		t.Errorf("Stats = %+v", st)
	}
}
