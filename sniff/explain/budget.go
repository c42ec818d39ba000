package explain

import "time"

// DefaultBudget is how many resets a second Explain ties to sockets when
// Config.Budget is 0. Each costs sock_diag round trips (several µs of
// system time); in a storm the rest are explained from the packet alone,
// so attribution never holds up the capture.
const DefaultBudget = 1000

// budget is a token bucket over capture timestamps: up to rate lookups a
// second, with bursts of up to rate. The zero value refuses everything;
// a negative rate allows everything.
type budget struct {
	rate    float64
	tokens  float64
	last    time.Time
	sampled uint64
}

func newBudget(rate int) budget {
	return budget{rate: float64(rate), tokens: float64(rate)}
}

// allow takes a token at time now (a packet's kernel timestamp), counting
// a refusal in sampled.
func (b *budget) allow(now time.Time) bool {
	if b.rate < 0 {
		return true
	}
	if !b.last.IsZero() {
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.tokens = min(b.rate, b.tokens+dt*b.rate)
		}
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	b.sampled++
	return false
}

// Sampled returns how many resets (and SYNs) Explain and Observe left to
// the packet alone because attribution was over its budget.
func (x *Explainer) Sampled() uint64 { return x.budget.sampled }
