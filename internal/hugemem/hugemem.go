// Package hugemem allocates byte buffers that the kernel backs with transparent huge pages
// (2 MiB) where it can: Linux, with transparent_hugepage set to "always" or "madvise".
//
// A buffer the kernel copies socket data into at gigabytes a second (the --jobs readers'
// chunk buffers, 16 MiB of them by default) costs fewer TLB misses on 2 MiB pages than on
// 4 KiB ones, and TLB misses are dear on a virtual machine, where each walks two page tables.
// Measured on a 2-core VM, a `--jobs 4` backup of 1.5 GB used 0.408 s of client CPU with its
// chunk buffers on huge pages against 0.462 s on small ones (bench/README.md, session 6). The
// price is paid once, when a huge page is first touched and the kernel zeroes it: on a VM
// whose memory the host has not backed yet that is slow (up to 40 ms for 16 MiB there).
//
// The memory is ordinary Go heap memory, collected as any slice is: the package only asks the
// kernel (madvise MADV_HUGEPAGE) to back its aligned 2 MiB ranges with huge pages when they
// are first touched. Nothing is lost where the kernel refuses: the buffer is then as make
// would return it.
package hugemem

// PageSize is the huge page size the buffers are aligned to.
const PageSize = 2 << 20

// Alloc returns a zeroed buffer of n bytes. When n is at least PageSize, the buffer starts on
// a PageSize boundary (the allocation is PageSize larger to allow it) and its whole huge pages
// are advised to the kernel as huge-page memory.
func Alloc(n int) []byte {
	if n < PageSize {
		return make([]byte, n)
	}
	b := make([]byte, n+PageSize)
	off := alignOffset(b)
	b = b[off : off+n : off+n]
	advise(b[:n/PageSize*PageSize])
	return b
}
