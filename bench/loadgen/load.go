package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Outcome of one request or stream.
type Outcome int

const (
	OK     Outcome = iota // allowed (gRPC) or 2xx (HTTP)
	Denied                // a well-formed refusal: CheckResponse status != 0, immediate_response, 4xx
	Failed                // RPC or transport error, 5xx
)

// Op sends request number i and reports how it went; detail names a
// denial or a failure (a status code, a gRPC code) for the report.
type Op func(ctx context.Context, i int) (outcome Outcome, detail string)

// LoadOptions describe one run. Exactly one of Rate (open loop) or
// Concurrency (closed loop) is set.
type LoadOptions struct {
	Name        string
	Rate        float64
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
	// Requests > 0 ends a closed-loop run after that many requests instead
	// of after Duration (and there is no warm-up).
	Requests int
	Timeout  time.Duration
}

// Report is what a run prints as JSON on stdout.
type Report struct {
	Name          string             `json:"name"`
	Mode          string             `json:"mode"` // "open" or "closed"
	Rate          float64            `json:"target_rps,omitempty"`
	Concurrency   int                `json:"concurrency,omitempty"`
	DurationS     float64            `json:"duration_s"`
	Requests      int                `json:"requests"`
	OK            int                `json:"ok"`
	Denied        int                `json:"denied"`
	Failed        int                `json:"failed"`
	Details       map[string]int     `json:"details,omitempty"`
	ThroughputRPS float64            `json:"throughput_rps"`
	LatencyUs     map[string]float64 `json:"latency_us"`
	// Open loop: how late requests left against their schedule (the
	// generator's own lag, already included in LatencyUs).
	SendLagUs map[string]float64 `json:"send_lag_us,omitempty"`
	// [percentile, microseconds] pairs for a percentile chart.
	Curve [][2]float64 `json:"percentile_curve"`
}

type recorder struct {
	mu        sync.Mutex
	latencies []int64 // nanoseconds
	lags      []int64
	ok        int
	denied    int
	failed    int
	details   map[string]int
}

func newRecorder(capacity int) *recorder {
	return &recorder{latencies: make([]int64, 0, capacity), details: map[string]int{}}
}

func (r *recorder) add(latency, lag time.Duration, outcome Outcome, detail string, withLag bool) {
	r.mu.Lock()
	r.latencies = append(r.latencies, int64(latency))
	if withLag {
		r.lags = append(r.lags, int64(lag))
	}
	switch outcome {
	case OK:
		r.ok++
	case Denied:
		r.denied++
	default:
		r.failed++
	}
	if detail != "" {
		r.details[detail]++
	}
	r.mu.Unlock()
}

// progress prints one line a second on stderr for the harness's display.
func progress(done *atomic.Int64, failed *atomic.Int64, stop <-chan struct{}) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			fmt.Fprintf(os.Stderr, "progress done=%d failed=%d\n", done.Load(), failed.Load())
		}
	}
}

// Run drives op closed-loop (Concurrency workers, each sending its next
// request when the previous one is answered) or open-loop (requests leave
// on a fixed schedule, Rate per second, whether or not earlier ones were
// answered; latency counts from the scheduled time, so a stall is charged
// to every request it delayed: no coordinated omission).
func Run(o LoadOptions, op Op) Report {
	var done, failedCount atomic.Int64
	stop := make(chan struct{})
	go progress(&done, &failedCount, stop)
	defer close(stop)

	expected := 1024
	if o.Rate > 0 {
		expected = int(o.Rate*o.Duration.Seconds()) + 16
	} else if o.Requests > 0 {
		expected = o.Requests
	}
	rec := newRecorder(expected)
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	call := func(i int) (Outcome, string) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		outcome, detail := op(ctx, i)
		done.Add(1)
		if outcome == Failed {
			failedCount.Add(1)
		}
		return outcome, detail
	}

	begin := time.Now()
	measureFrom := begin.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	var elapsed time.Duration
	if o.Rate > 0 {
		interval := time.Duration(float64(time.Second) / o.Rate)
		var wg sync.WaitGroup
		// The schedule runs on its own OS thread and waits with nanosleep(2):
		// Go's timers wake up to a millisecond late, which would be charged
		// to every request as latency.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := 0; ; i++ {
			intended := begin.Add(time.Duration(i) * interval)
			if !intended.Before(end) {
				break
			}
			if wait := time.Until(intended); wait > 0 {
				pause := syscall.NsecToTimespec(int64(wait))
				_ = syscall.Nanosleep(&pause, nil)
			}
			measured := !intended.Before(measureFrom)
			wg.Add(1)
			go func(i int, intended time.Time) {
				defer wg.Done()
				sent := time.Now()
				outcome, detail := call(i)
				if measured {
					rec.add(time.Since(intended), sent.Sub(intended), outcome, detail, true)
				}
			}(i, intended)
		}
		wg.Wait()
		elapsed = o.Duration
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < o.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if o.Requests > 0 && i >= o.Requests {
						return
					}
					started := time.Now()
					if o.Requests == 0 && !started.Before(end) {
						return
					}
					outcome, detail := call(i)
					if o.Requests > 0 || !started.Before(measureFrom) {
						rec.add(time.Since(started), 0, outcome, detail, false)
					}
				}
			}()
		}
		wg.Wait()
		if o.Requests > 0 {
			elapsed = time.Since(begin)
		} else {
			elapsed = o.Duration
		}
	}

	report := Report{
		Name:        o.Name,
		Mode:        "closed",
		Concurrency: o.Concurrency,
		DurationS:   elapsed.Seconds(),
		Requests:    len(rec.latencies),
		OK:          rec.ok,
		Denied:      rec.denied,
		Failed:      rec.failed,
		Details:     rec.details,
		LatencyUs:   summary(rec.latencies),
		Curve:       curve(rec.latencies),
	}
	if o.Rate > 0 {
		report.Mode = "open"
		report.Rate = o.Rate
		report.Concurrency = 0
		lag := summary(rec.lags)
		report.SendLagUs = map[string]float64{"p50": lag["p50"], "p99": lag["p99"], "max": lag["max"]}
	}
	report.ThroughputRPS = float64(report.Requests) / elapsed.Seconds()
	return report
}

func sorted(values []int64) []int64 {
	s := append([]int64(nil), values...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	return s
}

// percentile by the nearest-rank method, in microseconds.
func percentile(s []int64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(s) {
		rank = len(s) - 1
	}
	return round(float64(s[rank]) / 1e3)
}

func round(us float64) float64 { return math.Round(us*10) / 10 }

func summary(values []int64) map[string]float64 {
	s := sorted(values)
	if len(s) == 0 {
		return map[string]float64{}
	}
	var total float64
	for _, v := range s {
		total += float64(v)
	}
	return map[string]float64{
		"min":  round(float64(s[0]) / 1e3),
		"mean": round(total / float64(len(s)) / 1e3),
		"p50":  percentile(s, 50),
		"p90":  percentile(s, 90),
		"p99":  percentile(s, 99),
		"p999": percentile(s, 99.9),
		"max":  round(float64(s[len(s)-1]) / 1e3),
	}
}

var curvePoints = []float64{0, 10, 25, 50, 75, 90, 95, 97, 99, 99.5, 99.7, 99.9, 99.95, 99.99, 100}

func curve(values []int64) [][2]float64 {
	s := sorted(values)
	out := make([][2]float64, 0, len(curvePoints))
	if len(s) == 0 {
		return out
	}
	for _, p := range curvePoints {
		out = append(out, [2]float64{p, percentile(s, math.Max(p, 1e-9))})
	}
	return out
}

func printReport(r Report) {
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(r); err != nil {
		fail(err)
	}
}
