// Package httpserve is the small HTTP/1.x server behind rstwatch
// --metrics: just enough HTTP for a Prometheus scrape, one resource,
// GET and HEAD, one request per connection, answered and closed
// ("Connection: close"), with bounds on header size, time and
// connections. It is built to keep answering scrapes while clients that
// hold connections without using them (idle or slowloris) attack it: the
// whole request has ReadTimeout, and when every connection is taken the
// oldest one still waiting for its request is closed to make room, once it
// has had EvictAfter. Accept errors, such as running out of file
// descriptors, are retried with backoff, as net/http does.
//
// net/http would do the same job but links crypto/tls, x509 and HTTP/2
// into the binary: about 4 MB of an amd64 build, 4.3 MB on mipsle, more
// than the whole rest of rstwatch (README "Containers and firmware").
// ReadRequest faces the network, so it has a fuzz target.
//
// It lives under cmd/rstwatch/internal because only the command serves
// anything; the registry it serves is package metrics.
package httpserve
