package restore_test

import (
	"archive/tar"
	"bytes"
	"testing"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/restore"
)

// StreamOwner reads the owner of a stream's first member when a PAX extended header comes
// before its header, as walweave's backup_label has one (its origin comment), within
// OwnerHeadSize; a root-owned stream names no owner.
func TestStreamOwnerBehindPAXHeader(t *testing.T) {
	stream := func(uid int, comment string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		h := &tar.Header{Name: "backup_label", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3,
			Uid: uid, Gid: uid + 1, Uname: "walweave-no-such-user", Gname: "walweave-no-such-group"}
		if comment != "" {
			h.PAXRecords = map[string]string{"comment": comment}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	comment := pgformat.BackupOrigin{SystemID: 7450000000000000001, ServerVersion: 180006}.String()
	for name, head := range map[string][]byte{
		"plain header": stream(4242, ""),
		"PAX comment":  stream(4242, comment),
	} {
		if len(head) > restore.OwnerHeadSize {
			head = head[:restore.OwnerHeadSize]
		}
		o, ok := restore.StreamOwner(head)
		if !ok || o.UID != 4242 || o.GID != 4243 {
			t.Errorf("%s: StreamOwner = %+v, %v; want uid 4242, gid 4243", name, o, ok)
		}
	}
	if o, ok := restore.StreamOwner(stream(0, comment)); ok {
		t.Errorf("a root-owned stream names owner %+v", o)
	}
}
