//go:build !linux

package caps

// Effective is empty where there are no capabilities.
func Effective() Set { return 0 }

// Drop does nothing where there are no capabilities.
func Drop(...Capability) error { return nil }
