package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// TarBackupOptions are the pg_basebackup -Ft options TarBackup knows.
type TarBackupOptions struct {
	// WAL includes the WAL the backup needs at the end of base.tar (-X fetch); otherwise
	// there is none (-X none).
	WAL bool
	// MaxRateKB limits the server's send rate (--max-rate, kB/s; 0 = unlimited).
	MaxRateKB int
	// ManifestChecksums is --manifest-checksums ("" = the server's default, CRC32C).
	ManifestChecksums string
	// NoManifest leaves the manifest out (--no-manifest).
	NoManifest bool
}

// ClientCanBackUp reports whether an installed pg_basebackup works against this server: it
// refuses servers newer than itself ("incompatible server version"), which the matrix's 16 and
// 17 are when only Debian's 15 client programs are installed.
func (c *Cluster) ClientCanBackUp() bool {
	s, ok := c.Tool("pg_basebackup")
	return ok && s.Major >= c.Version
}

// TarBackup writes what `pg_basebackup -Ft -D out -c fast` writes (base.tar, one <oid>.tar per
// tablespace, backup_manifest), as the superuser over the unix socket: with pg_basebackup when
// it can back up this server (ClientCanBackUp), else with the same BASE_BACKUP command sent by
// this package, each archive stored exactly as the server sent it.
func (c *Cluster) TarBackup(ctx context.Context, out string, o TarBackupOptions) error {
	if c.ClientCanBackUp() {
		args := []string{"-Ft", "-c", "fast", "-D", out, "-X", "none"}
		if o.WAL {
			args[len(args)-1] = "fetch"
		}
		if o.MaxRateKB > 0 {
			args = append(args, fmt.Sprintf("--max-rate=%dk", o.MaxRateKB))
		}
		if o.ManifestChecksums != "" {
			args = append(args, "--manifest-checksums="+o.ManifestChecksums)
		}
		if o.NoManifest {
			args = append(args, "--no-manifest")
		}
		_, err := c.Run(ctx, "pg_basebackup", args...)
		return err
	}
	opts := []string{"LABEL 'pg_basebackup base backup'", "CHECKPOINT 'fast'", "WAIT 0", "TABLESPACE_MAP", "TARGET 'client'"}
	if o.WAL {
		opts = append(opts, "WAL")
	}
	if o.MaxRateKB > 0 {
		opts = append(opts, fmt.Sprintf("MAX_RATE %d", o.MaxRateKB))
	}
	if !o.NoManifest {
		opts = append(opts, "MANIFEST 'yes'")
		if o.ManifestChecksums != "" {
			opts = append(opts, fmt.Sprintf("MANIFEST_CHECKSUMS '%s'", o.ManifestChecksums))
		}
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	conn, err := pgconn.Connect(ctx, c.SocketDSN("postgres")+" replication=true")
	if err != nil {
		return fmt.Errorf("pgtest: base backup: %w", err)
	}
	defer conn.Close(context.Background())
	w := &archiveWriter{dir: out}
	_, err = conn.CopyTo(ctx, w, "BASE_BACKUP ("+strings.Join(opts, ", ")+")")
	if cerr := w.close(); err == nil {
		err = cerr
	}
	if err == nil && w.err != nil {
		err = w.err
	}
	if err != nil {
		return fmt.Errorf("pgtest: BASE_BACKUP: %w", err)
	}
	return Chown(out)
}

// archiveWriter stores BASE_BACKUP's CopyData messages (pgconn's CopyTo writes one message
// per Write): 'n' starts an archive file, 'm' the manifest, 'd' is data for the current one.
type archiveWriter struct {
	dir string
	f   *os.File
	err error
}

func (w *archiveWriter) Write(msg []byte) (int, error) {
	if len(msg) == 0 {
		return 0, nil
	}
	switch msg[0] {
	case 'n':
		name, _, _ := bytes.Cut(msg[1:], []byte{0})
		if err := w.open(filepath.Base(string(name))); err != nil {
			return 0, err
		}
	case 'm':
		if err := w.open("backup_manifest"); err != nil {
			return 0, err
		}
	case 'd':
		if w.f == nil {
			return 0, fmt.Errorf("archive data before any archive")
		}
		if _, err := w.f.Write(msg[1:]); err != nil {
			return 0, err
		}
	}
	return len(msg), nil
}

func (w *archiveWriter) open(name string) error {
	if err := w.close(); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	w.f = f
	return err
}

func (w *archiveWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
