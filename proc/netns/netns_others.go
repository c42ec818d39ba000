//go:build !linux

package netns

func do(string, func() error) error { return errUnimplemented }

// Inode returns the inode number that identifies the network namespace at path.
func Inode(string) (uint64, error) { return 0, errUnimplemented }
