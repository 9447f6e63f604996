// Package sourcetest is a source.Source made of members held in memory, for tests of what
// consumes a source (the weaver in package mux) without a server. It can fail at a chosen
// member, part way through its data, and call a hook before each member so a test can feed the
// WAL side in step with the data.
package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/tarw"
)

// File is one member of a fake backup.
type File struct {
	Name       string
	Type       tarw.Type // zero value: a regular file
	Data       []byte
	Linkname   string
	Tablespace *source.Tablespace // nil: the main directory
}

// Source serves Files in order. Its exported fields may be set before Open.
type Source struct {
	Info      source.Info
	StartInfo source.Start
	EndInfo   source.End
	Files     []File
	// BeforeMember, when set, is called before the member with index i is returned.
	BeforeMember func(i int)
	// FailAt and FailAfter make the member with index FailAt fail with FailErr after FailAfter
	// bytes of its data (FailAt < 0: never).
	FailAt    int
	FailAfter int
	FailErr   error

	next    int
	started bool
	closed  bool
}

// New returns a Source of files (FailAt -1) with a start at 0/2000028 on timeline 1 and an end
// at 0/3000100.
func New(files ...File) *Source {
	return &Source{
		Info:      source.Info{SystemID: "7000000000000000001", ServerVersion: 170000},
		StartInfo: source.Start{StartLSN: 0x2000028, Timeline: 1},
		EndInfo:   source.End{EndLSN: 0x3000100, Timeline: 1, Manifest: []byte("{\"PostgreSQL-Backup-Manifest-Version\": 1}\n")},
		Files:     files,
		FailAt:    -1,
	}
}

var _ source.Source = (*Source)(nil)

// Open returns s.Info.
func (s *Source) Open(ctx context.Context) (source.Info, error) { return s.Info, ctx.Err() }

// Start returns s.StartInfo.
func (s *Source) Start(ctx context.Context, progress func(int64)) (source.Start, error) {
	s.started = true
	return s.StartInfo, ctx.Err()
}

// Next returns the next file as a member.
func (s *Source) Next(ctx context.Context) (source.Member, error) {
	if err := ctx.Err(); err != nil {
		return source.Member{}, err
	}
	if s.closed {
		return source.Member{}, errors.New("sourcetest: closed")
	}
	if s.next >= len(s.Files) {
		return source.Member{}, io.EOF
	}
	i := s.next
	s.next++
	if s.BeforeMember != nil {
		s.BeforeMember(i)
	}
	f := s.Files[i]
	typ := f.Type
	if typ == 0 {
		typ = tarw.TypeFile
	}
	h := &tarw.Member{Name: f.Name, Type: typ, Mode: 0o600, ModTime: time.Unix(1700000000, 0), Linkname: f.Linkname}
	if typ == tarw.TypeDir {
		h.Mode = 0o700
	}
	var data io.Reader = bytes.NewReader(nil)
	if typ == tarw.TypeFile {
		h.Size = int64(len(f.Data))
		data = bytes.NewReader(f.Data)
		if i == s.FailAt {
			data = io.MultiReader(bytes.NewReader(f.Data[:s.FailAfter]), errReader{s.FailErr})
		}
	}
	return source.Member{Header: h, Tablespace: f.Tablespace, Data: data}, nil
}

// End returns s.EndInfo, or an error if members were left.
func (s *Source) End(ctx context.Context) (source.End, error) {
	if s.next < len(s.Files) {
		return source.End{}, errors.New("sourcetest: End before the last member")
	}
	return s.EndInfo, ctx.Err()
}

// Close marks s closed.
func (s *Source) Close() error { s.closed = true; return nil }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// LSN is a convenience for tests building positions.
func LSN(s string) pgformat.LSN {
	l, err := pgformat.ParseLSN(s)
	if err != nil {
		panic(err)
	}
	return l
}
