package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
)

// Text renders the report for a person. Every sentence comes from a field
// of the report (and its JSON) and claims no more than that field.
func (r *Report) Text() string {
	var b strings.Builder
	if r.Offline {
		fmt.Fprintf(&b, "rstwatch diagnose (offline, from the packets and handshakes in the file): %d resets over %.2fs\n", r.Headline.ResetsTotal, r.DurationS)
	} else {
		fmt.Fprintf(&b, "rstwatch diagnose: %d resets in %.2fs\n", r.Headline.ResetsTotal, r.DurationS)
		b.WriteString(r.Headline.Text + "\n")
	}
	if !r.Abnormal {
		b.WriteString("\nNothing abnormal: no unexpected TCP resets, no failed connections the resets do not explain, no alert.\n")
	}
	if r.Abnormal && len(r.Findings) > 0 {
		b.WriteString("\nFindings, most failures first:\n")
		for i := range r.Findings {
			writeFinding(&b, fmt.Sprintf("%d. ", i+1), &r.Findings[i])
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes (expected resets, not failures):\n")
		for i := range r.Notes {
			writeFinding(&b, "- ", &r.Notes[i])
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

func writeFinding(b *strings.Builder, prefix string, f *Finding) {
	fmt.Fprintf(b, "%s%s %s", prefix, f.Cause, f.ServiceAddr)
	switch f.ServiceNameFrom {
	case "listener":
		fmt.Fprintf(b, " (%s listens there)", safe.Text(string(f.ServiceName)))
	case "guess":
		fmt.Fprintf(b, " (port usually %s: a guess)", safe.Text(string(f.ServiceName)))
	}
	fmt.Fprintf(b, ": %d (%.2f/s over the run)", f.Count, f.RunRatePerS)
	if f.Direction != "" {
		fmt.Fprintf(b, ", %s", f.Direction)
	}
	if len(f.Ifnames) > 0 {
		names := make([]string, len(f.Ifnames))
		for i, n := range f.Ifnames {
			names[i] = string(n)
		}
		fmt.Fprintf(b, " on %s", safe.Text(strings.Join(names, ", ")))
	}
	fmt.Fprintf(b, "\n   %s\n", f.Advice)
	if len(f.Peers) > 0 {
		var ps []string
		for _, p := range f.Peers {
			ps = append(ps, fmt.Sprintf("%s (%d)", p.Addr, p.Count))
		}
		fmt.Fprintf(b, "   peers: %s\n", strings.Join(ps, ", "))
	}
	if len(f.Programs) > 0 {
		var ps []string
		for _, p := range f.Programs {
			s := strings.ReplaceAll(p.Role, "_", " ") + " " + programText(p)
			ps = append(ps, s)
		}
		fmt.Fprintf(b, "   processes: %s\n", strings.Join(ps, "; "))
	}
	if !f.RolesKnown {
		fmt.Fprintf(b, "   roles unknown: sender and receiver are by the reset's direction")
		if f.ServiceFrom == fromPort {
			fmt.Fprintf(b, "; %s is taken as the service end because its port is the lower", f.ServiceAddr)
		}
		b.WriteString("\n")
	}
}

// WriteJSON writes the report as one indented JSON document and a
// newline. Outside text in it goes through package safe (see Finding).
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
