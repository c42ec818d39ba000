package diagnose

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rstwatch/rstwatch/proc"
	"github.com/rstwatch/rstwatch/proc/counters"
)

// Progress is diagnose's live line on a terminal: elapsed time, resets so
// far and the current failed-connection rate.
type Progress struct {
	w      io.Writer
	read   func() (proc.Counters, error)
	start  time.Time
	Resets atomic.Int64 // resets so far, set by the capture

	mu       sync.Mutex
	last     proc.Counters
	lastAt   time.Time
	rate     float64
	drawnLen int
}

// NewProgress returns the line, drawn on w (a terminal) by Show. read
// reads the counters for the rate; c0 were read at the start.
func NewProgress(w io.Writer, read func() (proc.Counters, error), c0 proc.Counters) *Progress {
	return &Progress{w: w, read: read, start: time.Now(), last: c0, lastAt: time.Now()}
}

// Show redraws the line. It may be called from any goroutine.
func (p *Progress) Show() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.lastAt) >= time.Second && p.last != nil {
		if c, err := p.read(); err == nil {
			for _, row := range counters.Rows(nil, p.last, c, now.Sub(p.lastAt)) {
				if row.Info.Name == "AttemptFails" {
					p.rate = row.Rate
				}
			}
			p.last, p.lastAt = c, now
		}
	}
	line := fmt.Sprintf("%5.1fs elapsed, %d resets, %.1f failed connections/s", now.Sub(p.start).Seconds(), p.Resets.Load(), p.rate)
	fmt.Fprintf(p.w, "\r%-*s", p.drawnLen, line)
	p.drawnLen = len(line)
}

// Clear erases the line before the report is printed.
func (p *Progress) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawnLen > 0 {
		fmt.Fprintf(p.w, "\r%*s\r", p.drawnLen, "")
	}
}
