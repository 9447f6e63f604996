// Command walweave takes a PostgreSQL 15+ physical backup as one tar stream, with the WAL it
// needs streamed at the same time and woven in between the data files:
//
//	walweave backup -d "$DSN" | zstd | aws s3 cp - s3://bucket/base.tar.zst
//
// Subcommands: backup, verify, restore, version. Data goes to stdout only; logs and
// progress go to stderr. Exit status: 0 on success (a complete backup, a good stream), 1 on
// failure (one line on stderr says why; also when the reader of stdout closed it), 2 on a
// usage error (nothing was done), 130 when interrupted (SIGINT or SIGTERM; nothing is left
// on the server).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise it comes from
// the module's build information.
var version = ""

func main() {
	// A closed stdout (| head) must be an error to report, not a silent death by SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `walweave: a PostgreSQL physical backup as one tar stream, WAL woven in.

Usage:
  walweave backup  [flags]            write a backup stream to stdout (or -o FILE)
  walweave verify  [flags] [FILE|-]   check a stream without extracting it
  walweave restore -D DIR [flags] [FILE|-]
                                      check and extract a stream into a data directory
  walweave version                    print the version

Run "walweave COMMAND --help" for a command's flags.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdin, stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], stdin, stdout, stderr)
	case "fleet":
		return runFleet(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "walweave", versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "walweave: unknown command %q (commands: backup, verify, restore, version; see walweave --help)\n", args[0])
		return exitUsage
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// fail prints a one-line reason and returns the exit status for err.
func fail(ctx context.Context, stderr io.Writer, what string, err error) int {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "walweave: %s interrupted\n", what)
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "walweave: %s failed: %s\n", what, errorLine(err))
	return exitFailure
}

// errorLine is err on one line: a connection error as describeConnError tells it.
func errorLine(err error) string {
	if msg, ok := describeConnError(err); ok {
		return msg
	}
	return oneLine(err.Error())
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
