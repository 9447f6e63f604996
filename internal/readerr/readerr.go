// Package readerr tells a failing reader from a failing writer after io.Copy: Reader
// remembers the first error (other than io.EOF) its underlying reader returned.
package readerr

import "io"

// Reader passes reads through to R and keeps the first error other than io.EOF in Err.
type Reader struct {
	R   io.Reader
	Err error
}

// Read reads from R.
func (e *Reader) Read(p []byte) (int, error) {
	n, err := e.R.Read(p)
	if err != nil && err != io.EOF && e.Err == nil {
		e.Err = err
	}
	return n, err
}
