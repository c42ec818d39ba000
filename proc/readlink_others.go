//go:build !linux

package proc

import "os"

// readlink is os.Readlink where the allocation-free version is not built.
func readlink(path, buf []byte) (int, error) {
	target, err := os.Readlink(string(path[:len(path)-1]))
	if err != nil {
		return 0, err
	}
	return copy(buf, target), nil
}
