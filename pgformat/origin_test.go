package pgformat

import "testing"

func TestBackupOriginRoundTrip(t *testing.T) {
	o := BackupOrigin{SystemID: 7450123456789012345, ServerVersion: 170006}
	s := o.String()
	if s != "walweave: system_identifier=7450123456789012345 server_version_num=170006" {
		t.Fatalf("String() = %q", s)
	}
	got, ok := ParseBackupOrigin(s)
	if !ok || got != o || got.Major() != 17 {
		t.Fatalf("ParseBackupOrigin(%q) = %+v, %v", s, got, ok)
	}
	// A later version may add keys; they are skipped.
	if got, ok := ParseBackupOrigin(s + " stream_format=2"); !ok || got != o {
		t.Fatalf("with an unknown key: %+v, %v", got, ok)
	}
	for _, bad := range []string{
		"",
		"made by GNU tar",
		"walweave: system_identifier=7450123456789012345",
		"walweave: server_version_num=170006",
		"walweave: system_identifier=x server_version_num=170006",
		"walweave: system_identifier=0 server_version_num=170006",
		"walweave: system_identifier=1 server_version_num=17",
		"walweave: system_identifier=1 server_version_num=-170006",
	} {
		if got, ok := ParseBackupOrigin(bad); ok {
			t.Errorf("ParseBackupOrigin(%q) = %+v, want not ok", bad, got)
		}
	}
}

func FuzzParseBackupOrigin(f *testing.F) {
	f.Add("walweave: system_identifier=7450123456789012345 server_version_num=170006")
	f.Add("walweave: server_version_num=150018 system_identifier=1 extra=y")
	f.Add("walweave:")
	f.Fuzz(func(t *testing.T, comment string) {
		o, ok := ParseBackupOrigin(comment)
		if !ok {
			return
		}
		again, ok := ParseBackupOrigin(o.String())
		if !ok || again != o {
			t.Fatalf("%q parsed as %+v, whose text %q parses as %+v, %v", comment, o, o.String(), again, ok)
		}
	})
}
