//go:build !linux

package main

import (
	"fmt"
	"runtime"
)

// processCapabilities are the capability sets of a Linux thread; other
// systems have none.
type processCapabilities struct {
	effective, permitted, inheritable capSet
}

var errNoCapabilities = fmt.Errorf("capabilities: not implemented on %s", runtime.GOOS)

func readCapabilities() (processCapabilities, error) { return processCapabilities{}, errNoCapabilities }

func effectiveCapabilities() capSet { return 0 }

// dropCapabilities does nothing where there are no capabilities.
func dropCapabilities(...capability) error { return nil }
