package hugemem

import (
	"testing"
	"unsafe"
)

// TestAlloc: a buffer of at least a huge page starts on a huge page boundary and has exactly
// the length and capacity asked for (appending to it never runs into the alignment's slack);
// a smaller one is a plain slice. Both are zeroed and writable.
func TestAlloc(t *testing.T) {
	for _, n := range []int{0, 100, PageSize - 1, PageSize, 3*PageSize + 12345, 16 << 20} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d, cap %d", n, len(b), cap(b))
		}
		if n >= PageSize && uintptr(unsafe.Pointer(&b[0]))%PageSize != 0 {
			t.Fatalf("Alloc(%d) at %p: not on a huge page boundary", n, &b[0])
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d): byte %d is %d", n, i, b[i])
			}
			b[i] = byte(i)
		}
	}
}
