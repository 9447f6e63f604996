package hugemem_test

import (
	"fmt"

	"github.com/walweave/walweave/internal/hugemem"
)

// A pool of chunk buffers carved from one huge-page buffer.
func ExampleAlloc() {
	const chunk, chunks = 1 << 20, 16
	arena := hugemem.Alloc(chunk * chunks)
	var pool [][]byte
	for i := range chunks {
		pool = append(pool, arena[i*chunk:i*chunk:(i+1)*chunk]) // empty, room for a chunk
	}
	fmt.Println(len(pool), cap(pool[0]))
	// Output: 16 1048576
}
