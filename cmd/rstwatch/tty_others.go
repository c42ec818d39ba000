//go:build !linux

package main

import "os"

// isTTY reports whether f is a character device, an approximation of
// isatty(3) good enough to decide whether to redraw.
func isTTY(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
