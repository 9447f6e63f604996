package hugemem

import (
	"syscall"
	"unsafe"
)

// alignOffset is the offset of the first PageSize boundary in b.
func alignOffset(b []byte) int {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return int((PageSize - p%PageSize) % PageSize)
}

// advise asks for huge pages under b (whole huge pages, aligned); a refusal (an old kernel,
// transparent huge pages off) leaves small pages.
func advise(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	}
}
