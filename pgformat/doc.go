// Package pgformat is walweave's one home for PostgreSQL's on-disk and backup formats
// (PostgreSQL 15 to 18). It imports only the standard library and does no I/O of its own
// beyond the readers and writers it is handed.
//
// What it knows:
//   - LSN, the write-ahead log position, in PostgreSQL's "16/B374D848" text form
//     (ParseLSN, LSN.String, LSN.AppendText; slog and encoding.Text support).
//   - WAL segment and timeline history file names (WALFileName, ParseWALFileName,
//     HistoryFileName, ParseHistoryFileName) and the content of a timeline history file
//     (ParseHistory); ValidWALSegmentSize.
//   - backup_label: ParseBackupLabel, BackupLabel.Bytes (the server's exact layout,
//     including the INCREMENTAL FROM lines of 17+) and BackupLabel.WithoutIncremental.
//   - backup_manifest, versions 1 (15, 16) and 2 (17+): ParseManifest (with the
//     Manifest-Checksum check and size limits) and ManifestBuilder, which writes the
//     server's layout byte for byte. The file checksum algorithms live here too
//     (NewChecksum, ChecksumHex).
//   - The lines walweave appends to postgresql.auto.conf for tablespaces
//     (AppendTablespaceLines, ParseTablespaceLines).
//   - BackupOrigin, the PAX comment walweave writes on a stream's backup_label header: the
//     cluster's system identifier and server_version_num (ParseBackupOrigin).
//   - INCREMENTAL relation files of 17+ incremental backups (IsIncrementalName,
//     ReadIncrementalHeader, IncrementalHeader.AppendTo, IncrementalFileSize).
//   - global/pg_control (ParseControlFile), with each release's layout and its CRC.
//
// The formats are PostgreSQL's; the code is walweave's own, written from the formats.
package pgformat
