package restore

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ParseOwner reads USER[:GROUP] (names or numeric ids; GROUP defaults to USER's primary
// group) and returns the owner and a description such as "postgres:postgres (uid 105, gid 111)".
func ParseOwner(spec string) (Owner, string, error) {
	uname, gname, hasGroup := strings.Cut(spec, ":")
	if uname == "" {
		return Owner{}, "", fmt.Errorf("owner %q: want USER[:GROUP]", spec)
	}
	u, err := lookupUser(uname)
	if err != nil {
		return Owner{}, "", fmt.Errorf("owner %q: %w", spec, err)
	}
	o := Owner{}
	o.UID, _ = strconv.Atoi(u.Uid)
	o.GID, _ = strconv.Atoi(u.Gid)
	if hasGroup && gname != "" {
		g, err := lookupGroup(gname)
		if err != nil {
			return Owner{}, "", fmt.Errorf("owner %q: %w", spec, err)
		}
		o.GID, _ = strconv.Atoi(g.Gid)
	}
	return o, DescribeOwner(o), nil
}

func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.Atoi(s); err == nil {
		if u, err := user.LookupId(s); err == nil {
			return u, nil
		}
		return &user.User{Uid: s, Gid: s, Username: s}, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return nil, fmt.Errorf("no user %q on this machine", s)
	}
	return u, nil
}

func lookupGroup(s string) (*user.Group, error) {
	if _, err := strconv.Atoi(s); err == nil {
		return &user.Group{Gid: s, Name: s}, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return nil, fmt.Errorf("no group %q on this machine", s)
	}
	return g, nil
}

// DescribeOwner names an owner: "postgres:postgres (uid 105, gid 111)".
func DescribeOwner(o Owner) string {
	un, gn := strconv.Itoa(o.UID), strconv.Itoa(o.GID)
	if u, err := user.LookupId(un); err == nil {
		un = u.Username
	}
	if g, err := user.LookupGroupId(gn); err == nil {
		gn = g.Name
	}
	return fmt.Sprintf("%s:%s (uid %d, gid %d)", un, gn, o.UID, o.GID)
}

// OwnerHeadSize is how much of a stream's start StreamOwner and ChooseOwner need: the first
// member's header, with the PAX extended header that may come before it (backup_label's
// comment, a long tablespace path).
const OwnerHeadSize = 16 << 10

// StreamOwner returns the owner recorded in a walweave stream, from head, the stream's first
// bytes (up to OwnerHeadSize; at least its first member's header): the user and group names
// PostgreSQL records ("postgres") when they exist on this machine, else the numeric ids, as
// tar -x run as root does. ok is false when head holds no tar header or the owner is root.
func StreamOwner(head []byte) (o Owner, ok bool) {
	h, err := tar.NewReader(bytes.NewReader(head)).Next()
	if err != nil && h == nil {
		return Owner{}, false
	}
	o = Owner{UID: h.Uid, GID: h.Gid}
	if h.Uname != "" {
		if u, err := user.Lookup(h.Uname); err == nil {
			o.UID, _ = strconv.Atoi(u.Uid)
			o.GID, _ = strconv.Atoi(u.Gid)
		}
	}
	if h.Gname != "" {
		if g, err := user.LookupGroup(h.Gname); err == nil {
			o.GID, _ = strconv.Atoi(g.Gid)
		}
	}
	if o.UID == 0 {
		return Owner{}, false
	}
	return o, true
}

// DirOwner returns the owner of dir, or of its nearest existing parent when dir does not
// exist yet (the directory the restore will create it in). ok is false when that is root.
func DirOwner(dir string) (o Owner, from string, ok bool) {
	p, err := filepath.Abs(dir)
	if err != nil {
		return Owner{}, "", false
	}
	for {
		fi, err := os.Stat(p)
		if err == nil {
			st, sok := fi.Sys().(*syscall.Stat_t)
			if !sok || st.Uid == 0 {
				return Owner{}, "", false
			}
			return Owner{UID: int(st.Uid), GID: int(st.Gid)}, p, true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return Owner{}, "", false
		}
		parent := filepath.Dir(p)
		if parent == p {
			return Owner{}, "", false
		}
		p = parent
	}
}

// ChooseOwner is the owner walweave restore gives the files when it runs as root without an
// owner given: the owner of dir (or of the directory it will be created in) when that is not
// root, else the owner recorded in the stream (head: its first bytes, up to OwnerHeadSize), as
// tar -x run as root does. desc says which ("postgres:postgres (uid 105, gid
// 111), the owner recorded in the stream"); ok is false when neither names an owner other
// than root.
func ChooseOwner(dir string, head []byte) (o Owner, desc string, ok bool) {
	if o, from, ok := DirOwner(dir); ok {
		return o, DescribeOwner(o) + ", the owner of " + from, true
	}
	if o, ok := StreamOwner(head); ok {
		return o, DescribeOwner(o) + ", the owner recorded in the stream", true
	}
	return Owner{}, "", false
}
