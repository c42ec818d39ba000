//go:build !linux

package netns

import (
	"fmt"
	"runtime"
)

func do(string, func() error) error { return errUnimplemented }

// Inode returns the inode number that identifies the network namespace at path.
func Inode(string) (uint64, error) { return 0, errUnimplemented }

var errUnimplemented = fmt.Errorf("netns: not implemented on %s", runtime.GOOS)
