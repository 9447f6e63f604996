package sqlfetch

import "testing"

func BenchmarkPageChecksum(b *testing.B) {
	page := make([]byte, 8192)
	for i := range page {
		page[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(page)))
	for i := 0; i < b.N; i++ {
		pageChecksum(page, uint32(i))
	}
}
