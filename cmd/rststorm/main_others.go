//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "rststorm: not implemented on %s (it needs Linux network namespaces)\n", runtime.GOOS)
	os.Exit(1)
}
