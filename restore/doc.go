// Package restore extracts a walweave backup stream (docs/stream-contract.md in the
// repository) into a PostgreSQL data directory, verifying it while it writes.
//
// Extract reads the stream once. Every member goes through the same checker as
// verify.Stream (package verify), so a restore that returns without error has written
// exactly a stream that verify accepts: manifest, sizes, checksums, backup_label and WAL.
// On any problem or error it removes what it wrote (unless Options.NoClean), so a failed
// restore never leaves a directory that looks usable.
//
// It refuses absolute names, "..", links and members that would land outside the target
// directory (also through a symbolic link already there: directories are checked with
// Lstat and files created with O_EXCL|O_NOFOLLOW), writes directories 0700 and files 0600
// (0750/0640 when the backup has group access), fsyncs files and directories (unless
// Options.NoSync), and writes small files with a pool of workers while it goes on reading.
//
// Tablespaces are in-place directories under pg_tblspc/<oid>/ in the stream, with
// allow_in_place_tablespaces = on in postgresql.auto.conf. Options.TablespaceMap moves
// a tablespace to a directory of its own (like pg_basebackup -T OLDDIR=NEWDIR) and makes
// pg_tblspc/<oid> a symbolic link to it; once no in-place tablespace remains, walweave's
// lines are removed from postgresql.auto.conf. Options.Recovery writes standby.signal or
// recovery.signal and recovery settings.
package restore
