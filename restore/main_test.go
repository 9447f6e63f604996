package restore_test

import (
	"os"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
)

// shared is one cluster and one base backup for the package's real-server tests.
var shared fixture.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}
