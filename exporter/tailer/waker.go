package tailer

import (
	"context"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// A Waker tells waiting goroutines when to look again: every interval in
// production, when the test says so in tests (as mtail's tailer does).
type Waker interface {
	// Wake returns a channel closed at the next wakeup.
	Wake() <-chan struct{}
}

// broadcast is a channel closed and replaced at every wakeup.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) Wake() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) wakeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// NewTimedWaker wakes its waiters every interval until ctx ends.
func NewTimedWaker(ctx context.Context, interval time.Duration) Waker {
	b := newBroadcast()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				b.wakeAll()
			}
		}
	}()
	return b
}

// inotifyWaker wakes its waiters when a file in a watched directory is
// written, created, renamed or removed, and every fallback interval in case
// an event is missed (a watch limit, a file system without inotify).
type inotifyWaker struct {
	*broadcast
	w *fsnotify.Watcher
}

// newInotifyWaker watches dirs until ctx ends; watch adds directories later.
func newInotifyWaker(ctx context.Context, fallback time.Duration) (*inotifyWaker, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	iw := &inotifyWaker{broadcast: newBroadcast(), w: w}
	go func() {
		defer w.Close()
		t := time.NewTicker(fallback)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.Events:
				iw.wakeAll()
			case <-w.Errors:
				iw.wakeAll()
			case <-t.C:
				iw.wakeAll()
			}
		}
	}()
	return iw, nil
}

// watch adds a directory; watching one twice is harmless.
func (iw *inotifyWaker) watch(dir string) error { return iw.w.Add(dir) }

// TestWaker is a Waker a test drives: WakeAll wakes every waiter, and
// Waiting tells when a number of goroutines wait again, that is, when they
// have done what the wakeup asked of them.
type TestWaker struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiting int
	watch   []waitingFor
}

type waitingFor struct {
	n  int
	ch chan struct{}
}

// NewTestWaker returns a waker that wakes nobody until told.
func NewTestWaker() *TestWaker { return &TestWaker{ch: make(chan struct{})} }

// Wake implements Waker; the caller counts as waiting from now.
func (w *TestWaker) Wake() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiting++
	kept := w.watch[:0]
	for _, x := range w.watch {
		if w.waiting >= x.n {
			close(x.ch)
		} else {
			kept = append(kept, x)
		}
	}
	w.watch = kept
	return w.ch
}

// WakeAll wakes every waiter.
func (w *TestWaker) WakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.waiting = 0
}

// Waiting returns a channel closed once n goroutines wait for the next wakeup.
func (w *TestWaker) Waiting(n int) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if w.waiting >= n {
		close(ch)
	} else {
		w.watch = append(w.watch, waitingFor{n: n, ch: ch})
	}
	return ch
}
