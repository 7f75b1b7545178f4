package gateway

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce collects the burst of events an editor or a Kubernetes
// ConfigMap update makes (write, rename, symlink swap) into one reload: the
// reload runs this long after the first event.
const reloadDebounce = 300 * time.Millisecond

// watcher reloads the gateway when the config file, or any file it names
// (certificates, specs), changes content. It watches directories, not
// files, so that atomic renames and ConfigMap symlink swaps are seen, and
// compares content digests so that touching a file does not reload.
type watcher struct {
	g    *Gateway
	fs   *fsnotify.Watcher
	mu   sync.Mutex
	sums map[string][32]byte
	dirs map[string]bool
	done chan struct{}
}

func newWatcher(g *Gateway) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{g: g, fs: fw, dirs: map[string]bool{}, done: make(chan struct{})}
	w.setFiles(g.snap.Load().files)
	go w.loop()
	return w, nil
}

// setFiles replaces the set of watched files and records their digests.
func (w *watcher) setFiles(files []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sums = map[string][32]byte{}
	for _, f := range files {
		w.sums[f] = digest(f)
		dir := filepath.Dir(f)
		if !w.dirs[dir] {
			if err := w.fs.Add(dir); err != nil {
				w.g.logger.Warn("cannot watch directory; changes there need SIGHUP", "dir", dir, "error", err.Error())
				continue
			}
			w.dirs[dir] = true
		}
	}
}

// changed reports whether any watched file's content differs from when it
// was loaded.
func (w *watcher) changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for f, sum := range w.sums {
		if digest(f) != sum {
			return true
		}
	}
	return false
}

func (w *watcher) loop() {
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if !w.relevant(ev.Name) || fire != nil {
				continue // not ours (an audit log beside the config), or a reload is already due
			}
			if timer == nil {
				timer = time.NewTimer(reloadDebounce)
			} else {
				timer.Reset(reloadDebounce)
			}
			fire = timer.C
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.g.logger.Warn("config watcher error", "error", err.Error())
		case <-fire:
			fire = nil
			if w.changed() {
				// Reload logs and counts its own outcome.
				_ = w.g.Reload(context.Background(), "file changed")
			}
		}
	}
}

// relevant reports whether an event on path can change a watched file: the
// file itself, or a Kubernetes ConfigMap's "..data" symlink swap. Other
// files in the same directory (an audit log written on every request) are
// ignored, or they would keep postponing the reload.
func (w *watcher) relevant(path string) bool {
	if strings.HasPrefix(filepath.Base(path), "..") {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.sums[filepath.Clean(path)]
	return ok
}

func (w *watcher) close() {
	close(w.done)
	_ = w.fs.Close()
}

// digest returns the SHA-256 of a file's content; a missing file has the
// zero digest, so its return counts as a change.
func digest(path string) [32]byte {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
