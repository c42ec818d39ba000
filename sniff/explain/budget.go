package explain

import "time"

// DefaultBudget is how many resets a second Explain ties to sockets when
// Config.Budget is 0. Each costs sock_diag round trips (several µs of
// system time); in a storm the rest are explained from the packet alone,
// so attribution never holds up the capture.
const DefaultBudget = 1000

// budget is a token bucket over capture timestamps: up to rate lookups a
// second, with bursts of up to rate. The zero value refuses everything;
// a negative rate allows everything. It runs on every reset of a storm,
// so it counts in integer nanoseconds: a token is 1e9 units, and a
// nanosecond earns rate units.
type budget struct {
	rate    int64 // tokens a second; <0: unlimited
	units   int64 // tokens × 1e9; below 0 after a miss (missed)
	last    int64 // Unix ns of the latest packet seen
	sampled uint64
}

const tokenUnits = int64(time.Second)

func newBudget(rate int) budget {
	return budget{rate: int64(rate), units: int64(max(rate, 0)) * tokenUnits}
}

// allow takes a token at time now (a packet's kernel timestamp), counting
// a refusal in sampled.
func (b *budget) allow(now time.Time) bool {
	if b.rate < 0 {
		return true
	}
	t := now.UnixNano()
	if b.last != 0 {
		if dt := t - b.last; dt > 0 {
			// Capped at a second's worth: the bucket holds rate tokens.
			b.units = min(b.rate*tokenUnits, b.units+min(dt, tokenUnits)*b.rate)
		}
	}
	if t > b.last {
		b.last = t
	}
	if b.units >= tokenUnits {
		b.units -= tokenUnits
		return true
	}
	b.sampled++
	return false
}

// missCost is what a lookup that found no socket costs, in tokens, all
// told: the kernel's work is the same as for a hit, and in a storm of
// resets for sockets that no longer exist (or never did: a scan, crafted
// resets) the next lookups would find nothing either. Attribution then
// backs off to a tenth of the budget, while lookups that find sockets keep
// all of it.
const missCost = 10

// missed charges a lookup that allow let through and that found no socket
// the rest of missCost. The bucket may go into debt (by less than
// missCost tokens: allow left it at 0 or more), paid back by the refill.
func (b *budget) missed() {
	if b.rate < 0 {
		return
	}
	b.units -= (missCost - 1) * tokenUnits
}

// Sampled returns how many resets (and SYNs) Explain and Observe left to
// the packet alone because attribution was over its budget.
func (x *Explainer) Sampled() uint64 { return x.budget.sampled }
