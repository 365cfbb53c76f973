package norman

import (
	"io"
	"sync"
)

// copyThrough moves bytes from read to write through a pooled 1 MiB buffer until read says io.EOF.
func copyThrough(read, write func([]byte) (int, error)) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	var total int64
	for {
		n, rerr := read(*buf)
		if n > 0 {
			written, err := write((*buf)[:n])
			total += int64(written)
			if err != nil {
				return total, err
			}
			if written < n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// copyBuffers are the 1 MiB buffers of copyThrough (Upload.ReadFrom, Download.WriteTo, Checksum).
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
