// Package namespaces finds the network namespaces rstwatch looks into:
// one named by a path or a process (Resolve), or every one on the host
// (Discover), each with a name a person knows it by and a reader of its TCP
// counters.
//
// It sits apart from package netns, which only switches threads, because it
// reads /proc (package proc) and netns must stay importable by proc's tests.
package namespaces
