// Command walweave takes a PostgreSQL 15+ physical backup as one tar stream, with the WAL it
// needs streamed at the same time and woven in between the data files:
//
//	walweave backup -d "$DSN" | zstd | aws s3 cp - s3://bucket/base.tar.zst
//
// Commands: backup, verify, restore, fleet (backup, restore), wal (stream, get, verify,
// prune), completion, version. Data goes to stdout only; logs and progress go to stderr. Exit
// status: 0 on success (a complete backup, a good stream), 1 on failure (one line on stderr
// says why; also when the reader of stdout closed it), 2 on a usage error (nothing was done),
// 130 when interrupted (SIGINT or SIGTERM; nothing is left on the server). wal get exits 126
// for a failure that is not "not in the archive" (fatal to recovery).
//
// # How to add a command
//
// The command line is github.com/spf13/cobra with GNU flags (github.com/spf13/pflag). A command
// is one constructor, newXCmd(a *app) *cobra.Command, in its own file:
//
//	func newFooCmd(a *app) *cobra.Command {
//		var f fooFlags
//		cmd := &cobra.Command{
//			Use:   "foo [flags] FILE",
//			Short: "one line for walweave --help",
//			Long:  "what it does, for walweave foo --help and docs/cli",
//			Args:  a.maxArgs(1), // or any cobra.PositionalArgs returning usagef(...)
//			RunE: func(cmd *cobra.Command, args []string) error {
//				return a.exit(runFoo(a, &f, args)) // runFoo prints its outcome, returns a status
//			},
//		}
//		cmd.Flags().StringVarP(&f.dir, "pgdata", "D", "", "data directory `DIR`")
//		return cmd
//	}
//
// and one line in topCommands below (a group of subcommands, like fleet, is newGroupCmd(a,
// ...) with its children added). RunE returns one of: a.exit(code), when the command printed
// its own outcome; usagef(...), a usage error (one line "walweave foo: ..." on stderr, exit
// 2, nothing done); any other error, a failure ("walweave: foo failed: ...", exit 1, or 130
// when the context was cancelled by SIGINT/SIGTERM). Flag errors are usage errors already.
// After a flag change run "make docs" (the reference in docs/cli is generated, and a test
// checks it is up to date).
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

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// topCommands are walweave's commands, in the order walweave --help lists them (then
// completion and help, which cobra adds): one line each.
var topCommands = []func(*app) *cobra.Command{
	newBackupCmd,
	newVerifyCmd,
	newRestoreCmd,
	newFleetCmd,
	newWALCmd,
	newVersionCmd,
}

// app is what every command shares: the context (cancelled by SIGINT/SIGTERM), the standard
// streams and the whole command line.
type app struct {
	ctx    context.Context
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is walweave with args (without the program name); it returns the exit status. Tests
// call it, main calls it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if args == nil {
		args = []string{} // cobra reads os.Args for a nil slice
	}
	a := &app{ctx: ctx, args: args, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	return a.status(cmd, err)
}

// newRootCmd is the walweave command with every command of topCommands under it.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "walweave COMMAND [flags]",
		Short: "a PostgreSQL physical backup as one tar stream, WAL woven in",
		Long: `walweave: a PostgreSQL physical backup as one tar stream, WAL woven in.

Data goes to stdout only (or -o FILE); logs and progress go to stderr. Exit status: 0 on
success, 1 on failure (one line on stderr says why), 2 on a usage error (nothing was done),
130 when interrupted (SIGINT or SIGTERM; nothing is left on the server).`,
		Version:           versionString(),
		Args:              cobra.ArbitraryArgs,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(a.stderr)
				_ = cmd.Usage()
				return a.exit(exitUsage)
			}
			return unknownCommand(cmd, args[0])
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate("walweave {{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(flagError)
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, newCmd := range topCommands {
		root.AddCommand(newCmd(a))
	}
	markFailures(root)
	return root
}

// usageTemplate is cobra's usage, with "Usage: walweave CMD ..." on one line and the flags
// with their GNU names (-D, --pgdata DIR).
const usageTemplate = `Usage: {{.UseLine}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{wrappedFlagUsages .LocalFlags | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{wrappedFlagUsages .InheritedFlags | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run "{{.CommandPath}} COMMAND --help" for a command's flags.{{end}}
`

func init() {
	cobra.EnableCommandSorting = false // walweave --help lists topCommands in their order
	cobra.AddTemplateFunc("wrappedFlagUsages", func(fs *pflag.FlagSet) string { return fs.FlagUsagesWrapped(100) })
}

// newGroupCmd is a command that only holds subcommands (walweave fleet): alone it prints its
// usage on stderr and exits 2; with an unknown subcommand it says so and exits 2.
func newGroupCmd(a *app, use, short, long string, children ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(a.stderr)
				_ = cmd.Usage()
				return a.exit(exitUsage)
			}
			return unknownCommand(cmd, args[0])
		},
	}
	cmd.AddCommand(children...)
	return cmd
}

// unknownCommand is the usage error for "walweave [GROUP] NAME" where NAME is no command.
func unknownCommand(cmd *cobra.Command, name string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	hint := ""
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		hint = fmt.Sprintf("did you mean %q? ", s[0])
	}
	return usagef("unknown command %q (%scommands: %s; see %s --help)", name, hint, strings.Join(names, ", "), cmd.CommandPath())
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  a.maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(a.stdout, "walweave", versionString())
			return nil
		},
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

// exitStatus is what a command returns when it printed its own outcome: the exit status.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit turns a command's exit status into its RunE result.
func (a *app) exit(code int) error {
	if code == exitOK {
		return nil
	}
	return exitStatus(code)
}

// usageError is a usage error: printed as "walweave CMD: MSG", exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// maxArgs refuses more than n positional arguments as a usage error.
func (a *app) maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("unexpected argument %q (see %s --help)", args[n], cmd.CommandPath())
		}
		return nil
	}
}

// flagError makes a flag that does not parse a usage error, with a pointer to --help; a
// Go-style single-dash long flag (-no-clean) gets the GNU spelling.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		if s := ne.GetSpecifiedShortnames(); len(s) > 1 {
			name, _, _ := strings.Cut(s, "=")
			if cmd.Flags().Lookup(name) != nil {
				return usagef("%v: long flags take two dashes: --%s (see %s --help)", err, s, cmd.CommandPath())
			}
		}
	}
	return usagef("%v (see %s --help)", err, cmd.CommandPath())
}

// status is the exit status for what the command cmd returned, after saying why on stderr.
func (a *app) status(cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	var es exitStatus
	if errors.As(err, &es) {
		return int(es)
	}
	path := "walweave"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "%s: %s\n", path, ue.msg)
		return exitUsage
	}
	var fe *failure
	if errors.As(err, &fe) {
		return fail(a.ctx, a.stderr, strings.TrimPrefix(path, "walweave "), fe.err)
	}
	// What cobra finds before a command runs (an argument count, an unknown subcommand of
	// its own commands) is a usage error.
	fmt.Fprintf(a.stderr, "%s: %s (see %s --help)\n", path, oneLine(err.Error()), path)
	return exitUsage
}

// failure marks an error a command's RunE returned (not a usage error nor an exit status):
// the command failed.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// markFailures wraps the RunE of cmd and its subcommands so that the plain errors they
// return are told apart from cobra's own usage errors.
func markFailures(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			var es exitStatus
			var ue *usageError
			if err == nil || errors.As(err, &es) || errors.As(err, &ue) {
				return err
			}
			return &failure{err: err}
		}
	}
	for _, c := range cmd.Commands() {
		markFailures(c)
	}
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

// plural is "1 node", "2 nodes": n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
