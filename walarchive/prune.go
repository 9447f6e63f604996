package walarchive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Prune deletes from an archive directory the complete and partial segments, of any timeline,
// whose segment number is below before's (a segment name: the first segment a base backup
// needs, its backup_label's START WAL LOCATION). History files are kept. With dryRun it deletes
// nothing. It returns the names deleted (or that would be), oldest first. segSize is the WAL
// segment size (0: taken from the segment named before, or the archive's first segment).
func Prune(ctx context.Context, dir, before string, segSize int, dryRun bool) ([]string, error) {
	bf, ok := ParseFileName(before)
	if !ok || bf.Kind != KindSegment {
		return nil, fmt.Errorf("walarchive: %q is not a WAL segment name", before)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("walarchive: %w", err)
	}
	var files []archFile
	for _, e := range ents {
		f, ok := ParseFileName(e.Name())
		if ok && f.Kind != KindHistory && e.Type().IsRegular() {
			files = append(files, archFile{FileName: f, name: e.Name()})
		}
	}
	if segSize == 0 {
		if segSize, err = archiveSegmentSize(dir, files); err != nil {
			return nil, err
		}
	}
	limit, ok := bf.SegNo(segSize)
	if !ok {
		return nil, fmt.Errorf("walarchive: %q is not a valid segment name for a %d byte segment size", before, segSize)
	}
	var out []archFile
	for _, f := range files {
		if no, ok := f.SegNo(segSize); ok && no < limit {
			f.segno = no
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].segno != out[j].segno {
			return out[i].segno < out[j].segno
		}
		return out[i].name < out[j].name
	})
	names := make([]string, 0, len(out))
	for _, f := range out {
		if err := ctx.Err(); err != nil {
			return names, err
		}
		if !dryRun {
			if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return names, fmt.Errorf("walarchive: prune: %w", err)
			}
		}
		names = append(names, f.name)
	}
	if !dryRun && len(names) > 0 {
		if err := syncDir(dir); err != nil {
			return names, fmt.Errorf("walarchive: prune: %w", err)
		}
	}
	return names, nil
}

// archiveSegmentSize reads the segment size from the long page header of a complete segment.
func archiveSegmentSize(dir string, files []archFile) (int, error) {
	for _, f := range files {
		if f.Kind != KindSegment {
			continue
		}
		data, err := readArchiveFile(dir, f.name)
		if err != nil {
			return 0, err
		}
		if n, ok := segmentSizeOf(data); ok {
			return n, nil
		}
	}
	return DefaultSegmentSize, nil
}

// DefaultSegmentSize is PostgreSQL's default wal_segment_size.
const DefaultSegmentSize = 16 << 20
