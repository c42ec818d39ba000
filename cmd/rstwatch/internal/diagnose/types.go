package diagnose

import (
	"time"

	"github.com/rstwatch/rstwatch/cmd/rstwatch/internal/safe"
)

// Report is diagnose's output; its JSON field names are a contract (issue
// 3/6): add fields, never rename or drop them.
type Report struct {
	DurationS   float64         `json:"duration_s"`
	Offline     bool            `json:"offline,omitempty"`
	Headline    Headline        `json:"headline"`
	Counters    CounterReport   `json:"counters"`
	Findings    []Finding       `json:"findings"`
	Unexplained []Unexplained   `json:"unexplained"`
	Drops       uint64          `json:"drops"`
	Alerts      []string        `json:"alerts"`
	Abnormal    bool            `json:"abnormal"`
	Listeners   []ListenerState `json:"listeners"`
	// Notes are resets that are expected (a client closing a completed
	// exchange with a reset): informational, they do not make the run
	// abnormal. Same shape as a finding.
	Notes []Finding `json:"notes"`
	// Sysctls are the watched namespace's settings the report quotes, as
	// read at the start of the run; a setting not read is absent.
	Sysctls map[string]safe.String `json:"sysctls"`
}

// Headline sums the run up: the failed-connection rate, the resets' rates
// and whether the failures are new. Every rate is over the whole run.
type Headline struct {
	FailedPerS       float64  `json:"failed_connections_per_s"`
	SentPerS         float64  `json:"resets_sent_per_s"`
	ReceivedPerS     float64  `json:"resets_received_per_s"`
	SinceBootPerS    *float64 `json:"failed_connections_per_s_since_boot"`
	New              bool     `json:"new"`
	Text             string   `json:"text"`
	ResetsTotal      int      `json:"resets"`
	FailedTotal      uint64   `json:"failed_connections"`
	ResetsSentTotal  int      `json:"resets_sent"`
	ResetsRecvdTotal int      `json:"resets_received"`
}

// CounterReport holds the kernel counters at the start and the end of the
// run, and their rates, by short name.
type CounterReport struct {
	Start map[string]uint64  `json:"start"`
	End   map[string]uint64  `json:"end"`
	Rates map[string]float64 `json:"rates"`
}

// Finding is one kind of event at one service, with the next step to take.
// Strings that may carry outside text (process and interface names) are
// safe.String, so encoding/json writes them through the one escaper.
type Finding struct {
	// Kind is what the finding counts: "reset" (Count resets),
	// "unanswered" (Count connections whose SYN, or SYN-ACK, was sent
	// again; Resent the retransmissions seen) or "unreachable" (Count ICMP
	// errors).
	Kind      string        `json:"kind"`
	Resent    int           `json:"resent,omitempty"`
	Cause     string        `json:"cause"`
	Local     string        `json:"local"`             // the endpoint that sent most of the resets (on this host when sender_local)
	Service   string        `json:"service,omitempty"` // the port's usual service, from a table built in: a guess (see service_name)
	SenderLoc *bool         `json:"sender_local"`
	Count     int           `json:"count"`
	RatePerS  float64       `json:"rate_per_s"` // over the resets' own span when there are 3 or more (see rate_per_s_run)
	Direction string        `json:"direction"`
	Ifnames   []safe.String `json:"ifnames"`
	Peers     []PeerCount   `json:"peers"`
	// Processes are the processes involved, by role: client (connected),
	// server (accepted), listener, last_listener; sender and receiver
	// only where the connection's roles are unknown (roles_known false).
	Processes []*ProcessRef `json:"processes"`
	Listener  *ListenerRef  `json:"listener"`
	Advice    safe.String   `json:"advice"`

	// ServiceAddr is the server end of the connections: the key of the
	// finding with the cause and the sender's program.
	ServiceAddr string `json:"service_addr"`
	// ServiceFrom says how ServiceAddr is known: "handshake" (the SYN was
	// captured), "syn" (the resets answered SYNs), "listener" (a listener
	// is bound to that port), "port" (a guess: the lower port).
	ServiceFrom string `json:"service_from"`
	// ServiceName names the service: the program that listens there
	// (service_name_from "listener") or the built-in port table's name
	// ("guess").
	ServiceName     safe.String `json:"service_name,omitempty"`
	ServiceNameFrom string      `json:"service_name_from,omitempty"`
	// SenderRole is the role of the end that sent the resets: "client",
	// "server", or "" when the roles are unknown (RolesKnown false).
	SenderRole string `json:"sender_role"`
	RolesKnown bool   `json:"roles_known"`
	// Programs groups Processes by role and program.
	Programs []ProgramRef `json:"programs"`
	// RunRatePerS is Count over the whole run.
	RunRatePerS float64 `json:"rate_per_s_run"`
	// ListenChecked counts the resets for which the kernel was asked, at
	// the moment of the reset, whether anything listened on the sender's
	// port (a sock_diag dump of the listening sockets).
	ListenChecked int `json:"listen_checked"`
	// Expected: the resets closed completed exchanges (a note).
	Expected bool `json:"expected"`
	// Trailing counts, for a note, the stateless resets that the closed
	// client ports sent afterwards, answering the server's segments still
	// in flight: part of the same closes, not counted in Count.
	Trailing int `json:"trailing_resets"`

	// For the advice of an unanswered or unreachable finding: how long
	// it lasted, whether the handshake segment sent again was the
	// server's SYN-ACK, and the ICMP errors in words and who sent them.
	spanS            float64
	synack           bool
	icmpWhat, icmpBy string
}

// ProgramRef is the processes of one program in one role.
type ProgramRef struct {
	Role      string      `json:"role"`
	Comm      safe.String `json:"comm"`
	PIDs      []int       `json:"pids"`
	Processes int         `json:"processes"`
	Count     int         `json:"count"` // resets it took part in
}

// PeerCount is how many of a finding's resets went to one peer.
type PeerCount struct {
	Addr  string `json:"addr"`
	Count int    `json:"count"`
}

// ProcessRef is a process a finding involves, in one role.
type ProcessRef struct {
	Role  string      `json:"role"` // client, server, listener, last_listener; sender, receiver when roles are unknown
	PID   int         `json:"pid"`
	Comm  safe.String `json:"comm"`
	UID   uint32      `json:"uid"`
	Count int         `json:"count,omitempty"`
	Until *time.Time  `json:"until,omitempty"`
}

// ListenerRef is the listener of a finding's endpoint, or the last one.
type ListenerRef struct {
	Listening bool        `json:"listening"`
	PID       int         `json:"pid,omitempty"`
	Comm      safe.String `json:"comm,omitempty"`
	Queue     uint32      `json:"queue"`
	Backlog   uint32      `json:"backlog"`
	Until     *time.Time  `json:"until,omitempty"` // for a listener that is gone
	// SYNsWhileFull counts the SYNs captured for this listener while its
	// latest sample showed its accept queue full.
	SYNsWhileFull int `json:"syns_while_full,omitempty"`
}

// ListenerState is the fullest a listener's accept queue was seen.
type ListenerState struct {
	Addr     string      `json:"addr"`
	PID      int         `json:"pid,omitempty"`
	Comm     safe.String `json:"comm,omitempty"`
	MaxQueue uint32      `json:"max_queue"`
	Backlog  uint32      `json:"backlog"`
	Full     bool        `json:"full"`
	// SYNs and SYNsWhileFull count the SYNs captured for it, in all and
	// while its latest sample showed its queue full.
	SYNs          int `json:"syns"`
	SYNsWhileFull int `json:"syns_while_full"`
}

// Unexplained is what the counters saw that the resets do not account for.
type Unexplained struct {
	Kind  string `json:"kind"`
	Count uint64 `json:"count"`
	Text  string `json:"text"`
}
