//go:build !linux

package main

// effectiveCapabilities is empty where there are no capabilities.
func effectiveCapabilities() capSet { return 0 }

// dropCapabilities does nothing where there are no capabilities.
func dropCapabilities(...capability) error { return nil }
