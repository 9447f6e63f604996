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

// BufferServer is a reader that holds its data in buffers of its own (a source's fetched
// chunks): its WriteTo hands them to the writer without a copy. Reader.WriteTo uses it.
type BufferServer interface {
	io.WriterTo
	ServesBuffers()
}

// WriteTo writes R's data to w: through R's WriteTo when R is a BufferServer (one copy less),
// otherwise with io.Copy, which reads R into w's own buffer when w has one (io.ReaderFrom).
// R's errors are kept apart from w's either way.
func (e *Reader) WriteTo(w io.Writer) (int64, error) {
	bs, ok := e.R.(BufferServer)
	if !ok {
		return io.Copy(w, onlyReader{e})
	}
	ww := &writeErr{w: w}
	n, err := bs.WriteTo(ww)
	if err != nil && ww.err == nil && e.Err == nil {
		e.Err = err
	}
	return n, err
}

// onlyReader hides Reader's WriteTo from io.Copy (which would call it again).
type onlyReader struct{ r *Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// writeErr remembers the error of the writer WriteTo writes to.
type writeErr struct {
	w   io.Writer
	err error
}

func (e *writeErr) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
