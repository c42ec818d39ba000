// Package netns creates sockets inside another Linux network namespace.
//
// A socket's network namespace is fixed when socket(2) runs, so Do switches a
// locked OS thread into the target namespace, runs the caller's function
// there (which opens its sockets), and switches back. The sockets keep working
// from any goroutine afterwards. Entering a namespace needs CAP_SYS_ADMIN.
//
// Package netns is Linux-only; on other systems Do returns an error.
package netns
