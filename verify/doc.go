// Package verify checks a walweave backup stream (docs/stream-contract.md in the repository)
// in one pass and in bounded memory, without extracting it.
//
// Stream reads the whole tar stream once and checks:
//
//   - the tar itself: well-formed headers, the end-of-archive marker present (a stream cut at
//     a member boundary is reported as truncated), nothing but zeros after it;
//   - member names: relative, no "..", no duplicates, no member below a regular file; only
//     regular files and directories;
//   - backup_label first (or, from a source that reads files over SQL, last after
//     global/pg_control), backup_manifest last, the manifest's JSON and its Manifest-Checksum;
//   - every file of the manifest present once with the right size and checksum (computed while
//     the data streams past, before the manifest arrives), and no file the manifest does not
//     list except those pg_verifybackup ignores too;
//   - backup_label against the manifest's WAL ranges and global/pg_control's system identifier;
//   - the WAL: every segment each WAL range needs, full size, every page header (magic,
//     address, timeline, system identifier, segment and block size) and every WAL record
//     (length, back-link and CRC) from the backup's start LSN to its end LSN on each
//     timeline, plus the timeline history files.
//
// Content problems are collected in Report.Problems (all of them, up to a cap); the error
// return of Stream is kept for I/O errors of the reader and context cancellation.
//
// Checker is the same machinery driven one member at a time, for callers that read the tar
// themselves or want to act on each member as it is checked: package restore extracts a
// stream with Checker.Scan and so verifies exactly what it writes.
//
// Why archive/tar and not tarw.Reader: tarw.Reader is the strict pass-through parser for the
// server's archives (it keeps each header byte for byte so the Writer can copy it, and stops
// at the first header it does not expect). verify reads streams after they went through other
// hands (re-packed by GNU tar, cut short by an uploader, corrupted at rest) and must report
// every problem it finds in one pass rather than stop at the first unusual header, so it
// takes the general reader of the standard library and checks the names and types itself.
// Both read walweave's own PAX extended headers (long names and link targets).
package verify
