package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
)

// Text renders the report for a person.
func (r *Report) Text() string {
	var b strings.Builder
	if r.Offline {
		fmt.Fprintf(&b, "rstwatch diagnose (offline, from the packets and handshakes in the file): %d resets over %.2fs\n", r.Headline.ResetsTotal, r.DurationS)
	} else {
		fmt.Fprintf(&b, "rstwatch diagnose: %d resets in %.2fs\n", r.Headline.ResetsTotal, r.DurationS)
		b.WriteString(r.Headline.Text + "\n")
	}
	if !r.Abnormal {
		b.WriteString("\nNothing abnormal: no TCP resets, no failed connections the resets do not explain, no alert.\n")
		return b.String()
	}
	if len(r.Findings) > 0 {
		b.WriteString("\nFindings, most failures first:\n")
	}
	for i, f := range r.Findings {
		fmt.Fprintf(&b, "%d. %s %s", i+1, f.Cause, f.Local)
		if f.Service != "" {
			fmt.Fprintf(&b, " (%s)", f.Service)
		}
		fmt.Fprintf(&b, ": %d (%.2f/s)", f.Count, f.RatePerS)
		if f.Direction != "" {
			fmt.Fprintf(&b, ", %s", f.Direction)
		}
		if len(f.Ifnames) > 0 {
			names := make([]string, len(f.Ifnames))
			for i, n := range f.Ifnames {
				names[i] = string(n)
			}
			fmt.Fprintf(&b, " on %s", safe.Text(strings.Join(names, ", ")))
		}
		fmt.Fprintf(&b, "\n   %s\n", f.Advice)
		if len(f.Peers) > 0 {
			var ps []string
			for _, p := range f.Peers {
				ps = append(ps, fmt.Sprintf("%s (%d)", p.Addr, p.Count))
			}
			fmt.Fprintf(&b, "   peers: %s\n", strings.Join(ps, ", "))
		}
		if len(f.Processes) > 0 {
			var ps []string
			for _, p := range f.Processes {
				s := fmt.Sprintf("%s %s pid %d", strings.ReplaceAll(p.Role, "_", " "), safe.Text(string(p.Comm)), p.PID)
				if p.Until != nil {
					s += " until " + p.Until.Format("15:04:05")
				}
				ps = append(ps, s)
			}
			fmt.Fprintf(&b, "   processes: %s\n", strings.Join(ps, "; "))
		}
	}
	if len(r.Unexplained) > 0 {
		b.WriteString("\nNot explained by the resets:\n")
		for _, u := range r.Unexplained {
			fmt.Fprintf(&b, "- %s\n", u.Text)
		}
	}
	if len(r.Alerts) > 0 {
		b.WriteString("\nAlerts:\n")
		for _, a := range r.Alerts {
			fmt.Fprintf(&b, "- ALERT %s\n", a)
		}
	}
	if r.Drops > 0 {
		fmt.Fprintf(&b, "\nThe kernel dropped %d packets of the capture: the counts above are low.\n", r.Drops)
	}
	return b.String()
}

// WriteJSON writes the report as one indented JSON document and a
// newline. Outside text in it goes through package safe (see Finding).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
