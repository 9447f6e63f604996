package walarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

// ErrNotFound is returned (wrapped) by Get and by a Source when the file is not in the archive.
// PostgreSQL's recovery reads that as the end of the archive; every other error must not be
// taken for it.
var ErrNotFound = errors.New("not in the archive")

// ErrOtherCluster is returned (wrapped) by Archiver.Run when the archive's newest segment is of
// another cluster than the server's (its long page header's system identifier differs).
var ErrOtherCluster = errors.New("the archive is of another cluster")

// ErrCorrupt is wrapped by the errors of Get and Verify about a file that is in the archive but
// cannot be decoded or fails its checks.
var ErrCorrupt = errCorrupt

// maxFile bounds what Get reads: the largest WAL segment size.
const maxFile = 1 << 30

// Source is where Get fetches files from.
type Source interface {
	// Fetch returns the stored content of the archive file for name (a WAL segment or history
	// file name without compression suffix), compressed or not, or an error wrapping
	// ErrNotFound when the archive does not have it.
	Fetch(ctx context.Context, name string) ([]byte, error)
}

// DirSource reads an archive directory written by DirSink (or pg_receivewal, or an
// archive_command that copies files): a segment as NAME, NAME.zst or NAME.lz4.
type DirSource struct{ Dir string }

// Fetch implements Source.
func (d DirSource) Fetch(ctx context.Context, name string) ([]byte, error) {
	cands := []string{name}
	if _, ok := pgformat.ParseHistoryFileName(name); !ok {
		cands = append(cands, name+zstdSuffix, name+lz4Suffix)
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(d.Dir, c)
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("walarchive: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("walarchive: read %s: %w", p, err)
		}
		return b, nil
	}
	if _, err := os.Stat(d.Dir); err != nil {
		return nil, fmt.Errorf("walarchive: archive directory: %w", err)
	}
	return nil, fmt.Errorf("walarchive: %s: %w", name, ErrNotFound)
}

// ExecSource runs a shell command (sh -c) with every {segment} replaced by the file name; the
// command writes the file's content (compressed with zstd or LZ4, or not) on stdout and exits
// 0, or exits 1 when the archive does not have the file. Any other outcome is a failure.
type ExecSource struct{ Command string }

// Fetch implements Source.
func (e ExecSource) Fetch(ctx context.Context, name string) ([]byte, error) {
	cmd := shellCommand(ctx, strings.ReplaceAll(e.Command, "{segment}", name))
	var out bytes.Buffer
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &limitWriter{w: &out, n: maxFile + 1}, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() && ee.ExitCode() == 1 {
		return nil, fmt.Errorf("walarchive: %s: %w (the command exited 1)", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("walarchive: fetch %s: command %q: %w%s", name, e.Command, err, stderr.suffix())
	}
	return out.Bytes(), nil
}

type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		return 0, fmt.Errorf("more than %d bytes", maxFile)
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// Get is restore_command's helper: it fetches name (a WAL segment or timeline history file
// name, as recovery's %f asks) from src, decompresses it, checks it (a segment: its size, page
// headers and the CRC of every record that lies within it; a history file: its syntax) and
// writes it to dest through a temporary file in dest's directory. A name that is neither a
// segment nor a history file name, and a file src does not have, give an error wrapping
// ErrNotFound; a file that fails its checks one wrapping ErrCorrupt.
func Get(ctx context.Context, src Source, name, dest string) error {
	_, isHistory := pgformat.ParseHistoryFileName(name)
	if f, ok := ParseFileName(name); !ok || (f.Kind != KindHistory && (f.Kind != KindSegment || f.Compression.Algorithm != None)) {
		return fmt.Errorf("walarchive: %q is not a WAL segment or history file name: %w", name, ErrNotFound)
	}
	raw, err := src.Fetch(ctx, name)
	if err != nil {
		return err
	}
	data, err := decode(raw, maxFile)
	if err != nil {
		return fmt.Errorf("walarchive: %s: %w", name, err)
	}
	if isHistory {
		if _, err := pgformat.ParseHistory(data); err != nil {
			return fmt.Errorf("walarchive: %s: %w: %v", name, ErrCorrupt, err)
		}
	} else if err := checkSegment(name, data); err != nil {
		return err
	}
	return writeDest(dest, data)
}

// checkSegment checks one segment on its own.
func checkSegment(name string, data []byte) error {
	n := len(data)
	if n < 1<<20 || n > 1<<30 || bits.OnesCount(uint(n)) != 1 {
		return fmt.Errorf("walarchive: %s: %w: %d bytes is not a WAL segment size", name, ErrCorrupt, n)
	}
	c := verify.NewWALArchive()
	c.Segment(name, data)
	if rep := c.Finish(); len(rep.Problems) > 0 {
		return fmt.Errorf("walarchive: %s: %w: %s", name, ErrCorrupt, rep.Problems[0].Reason)
	}
	return nil
}

func writeDest(dest string, data []byte) (err error) {
	dir := filepath.Dir(dest)
	f, err := os.CreateTemp(dir, ".walweave-get-*")
	if err != nil {
		return fmt.Errorf("walarchive: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("walarchive: write %s: %w", dest, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("walarchive: write %s: %w", dest, err)
	}
	if err = os.Rename(f.Name(), dest); err != nil {
		return fmt.Errorf("walarchive: %w", err)
	}
	return nil
}
