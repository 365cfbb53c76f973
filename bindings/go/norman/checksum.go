package norman

/*
#include "norman.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"runtime"
	"unsafe"
)

// Digest is an xxh3-64 checksum, the one uploads report and the backend checks.
type Digest uint64

// String is the text form: 16 lowercase hex digits, as `norman checksum` prints and
// `file-push/socket/complete` sends.
func (d Digest) String() string { return fmt.Sprintf("%016x", uint64(d)) }

// ParseDigest reads the text form (exactly 16 hex digits, either case).
func ParseDigest(text string) (Digest, error) {
	s, free, err := cString("parse digest", "text", text)
	if err != nil {
		return 0, err
	}
	defer free()
	var sum C.uint64_t
	if err := call("parse digest", func() C.enum_norman_result { return C.norman_checksum_from_hex(s, &sum) }); err != nil {
		return 0, err
	}
	return Digest(sum), nil
}

// ChecksumBytes is the xxh3-64 of b.
func ChecksumBytes(b []byte) Digest {
	var sum C.uint64_t
	var p *C.uint8_t
	if len(b) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&b[0]))
	}
	C.norman_checksum(p, C.size_t(len(b)), &sum) // cannot fail: p is non-nil whenever len > 0
	return Digest(sum)
}

// Checksum reads r to its end and returns the xxh3-64 of its bytes.
func Checksum(r io.Reader) (Digest, error) {
	h := NewHasher()
	if _, err := copyThrough(r.Read, h.Write); err != nil {
		return 0, err
	}
	return Digest(h.Sum64()), nil
}

// Hasher is a streaming xxh3-64 (any chunking gives the same digest). It implements hash.Hash64;
// Sum appends the digest big-endian. Not safe for concurrent use.
type Hasher struct {
	ptr *C.norman_hasher
}

var _ hash.Hash64 = (*Hasher)(nil)

// NewHasher returns an empty hasher; its C state is freed by a finalizer.
func NewHasher() *Hasher {
	h := &Hasher{}
	h.Reset()
	runtime.SetFinalizer(h, func(h *Hasher) { C.norman_hasher_free(h.ptr) })
	return h
}

// Write feeds p; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	if len(p) > 0 {
		C.norman_hasher_update(h.ptr, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p)))
		runtime.KeepAlive(h)
	}
	return len(p), nil
}

// Sum64 is the digest of everything written so far.
func (h *Hasher) Sum64() uint64 {
	var sum C.uint64_t
	C.norman_hasher_digest(h.ptr, &sum)
	runtime.KeepAlive(h)
	return uint64(sum)
}

// Sum appends the digest to b, big-endian.
func (h *Hasher) Sum(b []byte) []byte { return binary.BigEndian.AppendUint64(b, h.Sum64()) }

// Reset starts over.
func (h *Hasher) Reset() {
	old := h.ptr
	if C.norman_hasher_new(&h.ptr) != C.NORMAN_OK {
		panic("norman: cannot allocate a hasher") // only when out of memory
	}
	C.norman_hasher_free(old)
}

// Size is 8 bytes.
func (h *Hasher) Size() int { return 8 }

// BlockSize is xxh3's stripe length.
func (h *Hasher) BlockSize() int { return 64 }
