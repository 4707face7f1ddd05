package bundles

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher turns file-system events under a dir source's tree, or beside a
// file source's file, into debounced reloads.
//
// Events come from fsnotify (inotify on Linux) rather than from polling:
// a reload follows an edit within the debounce time, nothing is read while
// nothing changes, and no write is missed however fast two writes follow
// each other. The parent directory is watched too, so that replacing the
// whole tree or file (git checkout of a new folder, atomic rename, the
// Kubernetes ConfigMap symlink swap) is seen. A source can add a rescan
// period (poll_interval) for file systems without inotify, such as NFS.
type watcher struct {
	fsw    *fsnotify.Watcher // nil when events are unavailable: rescan only
	path   string            // cleaned root directory or file
	isDir  bool
	parent string
	log    *slog.Logger
}

// fallbackRescan is the rescan period of a source whose file-system events
// are unavailable (e.g. the inotify instance limit is reached) and that has
// no poll_interval.
const fallbackRescan = 5 * time.Second

// newWatcher starts watching path. Without file-system events it logs a
// warning and the watcher only rescans.
func newWatcher(path string, isDir bool, log *slog.Logger) *watcher {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	w := &watcher{path: abs, isDir: isDir, parent: filepath.Dir(abs), log: log}
	if w.fsw, err = fsnotify.NewWatcher(); err != nil {
		log.Warn("bundle watch unavailable; rescanning instead", "path", abs, "err", err, "rescan_interval", fallbackRescan.String())
		w.fsw = nil
		return w
	}
	w.addAll()
	return w
}

// close stops the watcher.
func (w *watcher) close() {
	if w.fsw != nil {
		_ = w.fsw.Close()
	}
}

// addAll (re)adds the watches; paths that do not exist yet are skipped and
// picked up by a later call, after the parent reports their creation.
func (w *watcher) addAll() {
	if w.fsw == nil {
		return
	}
	_ = w.fsw.Add(w.parent)
	if !w.isDir {
		return
	}
	w.addTree(w.path)
}

// addTree watches dir and every non-hidden directory below it, as LoadFS
// skips hidden directories.
func (w *watcher) addTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.fsw.Add(p); err != nil {
			w.log.Debug("bundle watch not added", "path", p, "err", err)
		}
		return nil
	})
}

// relevant says whether ev may change the source's content.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if !w.isDir {
		// Anything beside the file: the file source skips a reload when
		// the file's identity, size and time are unchanged.
		return filepath.Dir(name) == w.parent
	}
	return name == w.path || strings.HasPrefix(name, w.path+string(filepath.Separator))
}

// run calls reload after each burst of relevant events has been quiet for
// debounce (or has lasted 10 debounces), and every rescan if that is set,
// until ctx ends. It closes the watcher.
func (w *watcher) run(ctx context.Context, debounce, rescan time.Duration, reload func(context.Context)) {
	defer w.close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		events <-chan fsnotify.Event // nil blocks: no events
		errs   <-chan error
	)
	if w.fsw != nil {
		events, errs = w.fsw.Events, w.fsw.Errors
	} else if rescan <= 0 {
		rescan = fallbackRescan
	}
	var tick <-chan time.Time
	if rescan > 0 {
		t := time.NewTicker(rescan)
		defer t.Stop()
		tick = t.C
	}
	var deadline time.Time // of the pending burst; zero when none
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok { // the watcher broke: rescan from now on
				events, errs = nil, nil
				if tick == nil {
					t := time.NewTicker(fallbackRescan)
					defer t.Stop()
					tick = t.C
				}
				continue
			}
			if !w.relevant(ev) {
				continue
			}
			if w.isDir && ev.Has(fsnotify.Create) {
				w.addTree(ev.Name)
			}
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(10 * debounce)
			}
			timer.Reset(min(debounce, max(deadline.Sub(now), 0)))
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow means lost events: reload to be sure.
			w.log.Warn("bundle watch error", "path", w.path, "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			deadline = time.Time{}
			w.addAll()
			reload(ctx)
		case <-tick:
			w.addAll()
			reload(ctx)
		}
	}
}
