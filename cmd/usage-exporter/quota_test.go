package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/usage-exporter/usage-exporter/internal/redistest"
)

// quotaScrape sums usage_quota_used{resource="calls"} and the parsed lines
// of one scrape; ok is false when the exporter did not answer.
func quotaScrape(addr string) (quota, parsed float64, ok bool) {
	body := scrape(addr)
	if body == "" {
		return 0, 0, false
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		switch {
		case strings.HasPrefix(line, "usage_quota_used{") && strings.Contains(line, `resource="calls"`):
			quota += v
		case strings.HasPrefix(line, "usage_exporter_log_lines_total{") && strings.Contains(line, `result="parsed"`):
			parsed += v
		}
	}
	return quota, parsed, true
}

// With the ledger in Redis, no scrape shows more usage than was counted,
// not even while a commit's acknowledgement is on its way or after a crash:
// scraping every 10 ms through three SIGKILLs, the calls in the quota
// series never exceed the lines written (the exporter keeps up with the
// writer, so a batch counted twice would), and end exactly at them. Before, the view
// counted a batch twice between its commit and its acknowledgement, and
// after a restart the batch in flight too (60,000 for 30,000 lines).
func TestQuotaViewNeverOvershoots(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	config := filepath.Join(dir, "config.yml")
	os.WriteFile(config, []byte("logs:\n  poll_interval: 20ms\n  checkpoint_interval: 100ms\n  sources:\n    - path: "+logPath+
		"\nredis:\n  url: "+srv.URL()+"\n  instance: overshoot\n"), 0o644)
	os.WriteFile(logPath, nil, 0o644)
	addr := freePort(t)

	const total = 30000
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		defer f.Close()
		var buf bytes.Buffer
		for i := 0; i < total; i++ {
			_, _, line := ledgerLine(i) // dated now: the quota series show the current period
			buf.WriteString(line)
			if (i+1)%300 == 0 {
				f.Write(buf.Bytes())
				written.Add(300)
				buf.Reset()
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	var (
		mu       sync.Mutex
		worst    string
		scrapes  int
		watching = make(chan struct{})
		stopped  = make(chan struct{})
	)
	go func() {
		defer close(stopped)
		for {
			select {
			case <-watching:
				return
			case <-time.After(10 * time.Millisecond):
			}
			quota, parsed, ok := quotaScrape(addr)
			w := written.Load() // after the scrape: a bound on what it can show
			if !ok {
				continue
			}
			mu.Lock()
			scrapes++
			if quota > float64(w) && worst == "" {
				worst = "quota calls " + strconv.FormatFloat(quota, 'f', -1, 64) + " with " +
					strconv.FormatInt(w, 10) + " lines written and " + strconv.FormatFloat(parsed, 'f', -1, 64) + " parsed"
			}
			mu.Unlock()
		}
	}()
	var stderr syncBuffer
	start := func() *exec.Cmd {
		cmd := command("--config.file", config, "--state.dir", filepath.Join(dir, "state"), "--web.listen-address", addr)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	// Three crashes while lines are written, two after (a batch in flight
	// in the state file is sent again at start).
	cmd := start()
	for range 3 {
		time.Sleep(900 * time.Millisecond)
		kill(cmd)
		cmd = start()
	}
	<-done
	for range 2 {
		time.Sleep(700 * time.Millisecond)
		kill(cmd)
		cmd = start()
	}
	defer kill(cmd)
	waitFor(t, "every call in the quota series", func() bool {
		quota, _, _ := quotaScrape(addr)
		return quota == total
	})
	close(watching)
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	if worst != "" {
		t.Errorf("a scrape showed more than was counted: %s\nexporter log:\n%s", worst, stderr.String())
	}
	if scrapes < 100 {
		t.Errorf("only %d scrapes", scrapes)
	}
}
