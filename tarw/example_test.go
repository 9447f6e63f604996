package tarw_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/walweave/walweave/tarw"
)

// Example re-roots the members of a tablespace archive under
// pg_tblspc/16384, adds a synthesized file and ends the combined archive.
func Example() {
	mt := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

	// A small tablespace archive as the server would send it (built here
	// with archive/tar; the server's own archives end in the same 1024-byte
	// trailer).
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	tw.WriteHeader(&tar.Header{Name: "PG_15_202209061/", Typeflag: tar.TypeDir, Mode: 0700, ModTime: mt, Format: tar.FormatUSTAR})
	tw.WriteHeader(&tar.Header{Name: "PG_15_202209061/5/16386", Typeflag: tar.TypeReg, Mode: 0600, Size: 5, ModTime: mt, Format: tar.FormatUSTAR})
	tw.Write([]byte("hello"))
	tw.Close()

	var out bytes.Buffer
	w := tarw.NewWriter(&out)
	r := tarw.NewReader(&in)
	r.SetArchiveName("16384.tar")
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		tarw.Reroot(m, "pg_tblspc/16384")
		if err := w.WriteHeader(m); err != nil {
			log.Fatal(err)
		}
		if _, err := io.Copy(w, r); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.WriteFile("backup_manifest", 0600, mt, []byte("{}\n")); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// Any tar reader reads the result.
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%c %#o %d %s\n", h.Typeflag, h.Mode, h.Size, h.Name)
	}
	// Output:
	// 5 0700 0 pg_tblspc/16384/PG_15_202209061/
	// 0 0600 5 pg_tblspc/16384/PG_15_202209061/5/16386
	// 0 0600 3 backup_manifest
}

// ExampleFormatError shows the error for a corrupted header.
func ExampleFormatError() {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	tw.WriteHeader(&tar.Header{Name: "global/1262", Typeflag: tar.TypeReg, Mode: 0600, ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR})
	tw.Close()
	data := in.Bytes()
	data[0] = 'G' // the stored checksum no longer matches

	r := tarw.NewReader(bytes.NewReader(data))
	r.SetArchiveName("base.tar")
	_, err := r.Next()
	var fe *tarw.FormatError
	if errors.As(err, &fe) {
		fmt.Println(fe.Member, fe.Offset)
	}
	fmt.Println(err)
	// Output:
	// Global/1262 0
	// tarw: base.tar offset 0: member "Global/1262": header checksum mismatch (stored 0011002, computed 0010742)
}
