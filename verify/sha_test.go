package verify_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

// onlyReader hides bytes.Reader's Seek: a pipe.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestSHAManifest(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{Algorithm: "SHA256", BigFiles: 1, BigFileSize: 3 << 20})
	b := s.Bytes()
	nfiles := len(s.Files()) - 2

	// A pipe, no hint: sizes only, and a loud warning.
	rep, err := verify.Stream(context.Background(), onlyReader{bytes.NewReader(b)}, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.ChecksumsNotVerified != nfiles || rep.ChecksumsVerified != 0 {
		t.Fatalf("pipe without hint: %+v\n%s", rep, rep)
	}
	if !strings.Contains(rep.String(), "WARNING: the checksums of") || !strings.Contains(rep.String(), "NOT verified") {
		t.Fatalf("no warning:\n%s", rep)
	}

	// A pipe with the hint: verified on the way.
	rep = check(t, b, verify.Options{Algorithm: "sha256"})
	if !rep.OK() || rep.ChecksumsVerified != nfiles || rep.ChecksumsNotVerified != 0 {
		t.Fatalf("with hint: %+v\n%s", rep, rep)
	}

	// A seekable file without hint: a second read.
	rep = check(t, b, verify.Options{})
	if !rep.OK() || rep.ChecksumsVerified != nfiles || rep.ChecksumsNotVerified != 0 {
		t.Fatalf("seekable: %+v\n%s", rep, rep)
	}

	// Corruption is found in all three ways but the first.
	bad := s.Clone()
	bad.Edit(dataFile(bad, "base/"))[7] ^= 1
	bb := bad.Bytes()
	wantProblem(t, check(t, bb, verify.Options{Algorithm: "SHA256"}), "SHA256 checksum mismatch")
	wantProblem(t, check(t, bb, verify.Options{}), "SHA256 checksum mismatch")

	// A manifest without checksums: sizes only, OK.
	none := fixture.Synth(fixture.SynthOptions{Algorithm: "NONE"})
	if rep := check(t, none.Bytes(), verify.Options{}); !rep.OK() || rep.ChecksumsVerified != 0 {
		t.Fatalf("NONE: %s", rep)
	}
	if _, err := verify.Stream(context.Background(), bytes.NewReader(b), verify.Options{Algorithm: "MD5"}); err == nil {
		t.Fatal("an unknown algorithm must be refused")
	}
}

func TestSkipOptionsAndIgnore(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{})
	bad := s.Clone()
	bad.Edit(dataFile(bad, "base/"))[0] ^= 1
	bad.Remove(bad.Segments()[1])
	rep := check(t, bad.Bytes(), verify.Options{SkipChecksums: true, SkipWAL: true})
	if !rep.OK() {
		t.Fatalf("skip options: %s", rep)
	}
	ex := s.Clone()
	ex.Insert(3, fixture.Member{Name: "base/extra", Type: '0', Data: []byte("x")})
	if rep := check(t, ex.Bytes(), verify.Options{Ignore: []string{"base/extra"}}); !rep.OK() {
		t.Fatalf("ignore: %s", rep)
	}
}

func TestContextAndReadErrors(t *testing.T) {
	b := fixture.Synth(fixture.SynthOptions{}).Bytes()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := verify.Stream(ctx, bytes.NewReader(b), verify.Options{})
	if err != context.Canceled || rep.Complete || rep.OK() {
		t.Fatalf("cancelled: err %v, %s", err, rep)
	}
	rep, err = verify.Stream(context.Background(), io.MultiReader(bytes.NewReader(b[:100000]), errReader{}), verify.Options{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || rep.OK() {
		t.Fatalf("read error: err %v, %s", err, rep)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errFire }

var errFire = &fireErr{}

type fireErr struct{}

func (*fireErr) Error() string { return "disk on fire" }
