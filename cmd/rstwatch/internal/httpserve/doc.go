// Package httpserve is the small HTTP/1.x server behind rstwatch
// --metrics: just enough HTTP for a Prometheus scrape, one resource,
// GET and HEAD, one request per connection, answered and closed
// ("Connection: close"), with bounds on header size, time and
// connections.
//
// net/http would do the same job but links crypto/tls, x509 and HTTP/2
// into the binary: about 4 MB of an amd64 build, 4.3 MB on mipsle, more
// than the whole rest of rstwatch (README "Containers and firmware").
// ReadRequest faces the network, so it has a fuzz target.
//
// It lives under cmd/rstwatch/internal because only the command serves
// anything; the registry it serves is package metrics.
package httpserve
