// Package metrics is rstwatch's Prometheus registry: resets counted by
// cause, direction and service port (the end that listened; see
// ServicePort), with bounded label values, so that a port scan cannot
// grow a scrape without limit, the capture's drops, and the
// kernel's TCP counters of package proc/counters read at scrape time,
// written in the text exposition format 0.0.4. The capture loop feeds it
// through Observe; package httpserve serves it.
//
// It lives under cmd/rstwatch/internal because the metric names and
// labels are the command's output contract, like its text and JSON.
package metrics
