package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// updateDocs regenerates docs/cli (make docs).
var updateDocs = flag.Bool("update-docs", false, "regenerate the CLI reference in docs/cli")

const referenceDir = "../../docs/cli"

// genReference writes the markdown reference of every command into dir.
func genReference(t *testing.T, dir string) {
	t.Helper()
	root := newRootCmd(&app{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		t.Fatal(err)
	}
}

// TestCLIReferenceUpToDate: the committed reference (docs/cli, generated from the commands'
// help by cobra's doc package) is what the commands say now; "make docs" regenerates it.
func TestCLIReferenceUpToDate(t *testing.T) {
	if *updateDocs {
		old, _ := filepath.Glob(filepath.Join(referenceDir, "walweave*.md"))
		for _, f := range old {
			os.Remove(f)
		}
		if err := os.MkdirAll(referenceDir, 0o755); err != nil {
			t.Fatal(err)
		}
		genReference(t, referenceDir)
	}
	fresh := t.TempDir()
	genReference(t, fresh)
	want, _ := filepath.Glob(filepath.Join(fresh, "*.md"))
	have, _ := filepath.Glob(filepath.Join(referenceDir, "walweave*.md"))
	names := func(paths []string) string {
		var n []string
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		sort.Strings(n)
		return strings.Join(n, " ")
	}
	if names(want) != names(have) {
		t.Fatalf("docs/cli has %s\nthe commands make %s\nrun make docs", names(have), names(want))
	}
	for _, p := range want {
		w, _ := os.ReadFile(p)
		h, _ := os.ReadFile(filepath.Join(referenceDir, filepath.Base(p)))
		if !bytes.Equal(w, h) {
			t.Errorf("docs/cli/%s is out of date: run make docs", filepath.Base(p))
		}
	}
	for _, want := range []string{"walweave_backup.md", "walweave_fleet_backup.md", "walweave_completion_bash.md"} {
		if !strings.Contains(names(have), want) {
			t.Errorf("the reference has no %s", want)
		}
	}
}

// commandLines returns the walweave command lines that markdown text shows: in code blocks
// (continuation lines joined, up to a pipe, redirection, ; or comment) and in inline code
// spans that start with "walweave ".
func commandLines(text string) []string {
	var out []string
	text = strings.ReplaceAll(text, "\\\n", " ")
	inBlock := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			for _, seg := range regexp.MustCompile(`\|\s*`).Split(line, -1) {
				seg = strings.TrimSpace(seg)
				if strings.HasPrefix(seg, "walweave ") {
					out = append(out, seg)
				}
			}
			continue
		}
		for _, m := range regexp.MustCompile("`(walweave [^`]*)`").FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// shellWords splits a command line as sh would (quotes, no expansion), up to the first
// unquoted |, <, >, ; or #.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("|<>;#", r):
			if inWord {
				words = append(words, cur.String())
			}
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestREADMECommandLinesParse: every walweave command line that README.md and docs/*.md show
// parses: run with --help appended, it prints that command's help on stdout and exits 0
// (a flag that does not exist, or a value that does not parse, would be exit 2).
func TestREADMECommandLinesParse(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append([]string{"../../README.md"}, files...)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range commandLines(string(b)) {
			words := shellWords(line)
			if len(words) < 2 {
				continue
			}
			n++
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(words[1:], "--help"), strings.NewReader(""), &stdout, &stderr)
			if code != 0 || stderr.Len() != 0 || !strings.Contains(stdout.String(), "Usage: walweave "+words[1]) {
				t.Errorf("%s: %q --help: exit %d, stderr %q, stdout %.200q", filepath.Base(f), line, code, stderr.String(), stdout.String())
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d command lines found in README.md and docs/*.md", n)
	}
	t.Logf("%d command lines parse", n)
}

// TestREADMEFlagsExist: every --flag that README.md names belongs to a walweave command (the
// refused pg_basebackup habits included), and every command README.md names is in
// walweave --help.
func TestREADMEFlagsExist(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(&app{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	flags := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	var spans []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(string(b), -1) {
		spans = append(spans, m[1])
	}
	spans = append(spans, commandLines(string(b))...)
	for _, s := range spans {
		if strings.Contains(s, "pg_basebackup") {
			continue // pg_basebackup's own command line
		}
		for _, m := range regexp.MustCompile(`(?:^|[\s/])--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(s, -1) {
			if !flags[m[1]] {
				t.Errorf("README.md names --%s (in %q), which no walweave command has", m[1], s)
			}
		}
	}
	var help bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &help, &help); code != 0 {
		t.Fatalf("walweave --help: exit %d", code)
	}
	for _, m := range regexp.MustCompile("`walweave ([a-z]+)").FindAllStringSubmatch(string(b), -1) {
		if !regexp.MustCompile(`(?m)^  ` + m[1] + ` `).MatchString(help.String()) {
			t.Errorf("README.md names walweave %s, which walweave --help does not list", m[1])
		}
	}
}

// TestGNUHelpAndCompletion: help is on stdout for every command and subcommand with GNU
// flags (-D, --pgdata DIR; --no-clean), flags parse anywhere on the line, a Go-style
// single-dash long flag gets the GNU spelling, and walweave completion bash|zsh|fish prints
// a script.
func TestGNUHelpAndCompletion(t *testing.T) {
	runW := func(args ...string) (string, string, int) {
		var so, se bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &so, &se)
		return so.String(), se.String(), code
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage: walweave", "  backup ", "  fleet ", "  completion "}},
		{[]string{"restore", "--help"}, []string{"-D, --pgdata DIR", "      --no-clean ", "-T, --tablespace-mapping OLDDIR=NEWDIR"}},
		{[]string{"backup", "--help"}, []string{"-c, --checkpoint MODE", "-h, --host HOST", "      --help "}},
		{[]string{"fleet", "backup", "--help"}, []string{"Usage: walweave fleet backup", "--node NAME=CONNINFO", "-o, --output FILE"}},
		{[]string{"fleet", "restore", "-h"}, []string{"Usage: walweave fleet restore", "-D, --pgdata DIR"}},
		{[]string{"help", "verify"}, []string{"Usage: walweave verify", "--checksum-algorithm ALGORITHM"}},
	} {
		stdout, stderr, code := runW(c.args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", c.args, w, stdout)
			}
		}
		if strings.Contains(stdout, "[=true|false]") {
			t.Errorf("%v: boolean flags are shown with [=true|false]", c.args)
		}
	}
	for shell, want := range map[string]string{"bash": "complete -o default -F __start_walweave walweave", "zsh": "#compdef walweave", "fish": "complete -c walweave"} {
		stdout, stderr, code := runW("completion", shell)
		if code != 0 || stderr != "" || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: exit %d, stderr %q, no %q in the script", shell, code, stderr, want)
		}
	}
	// Flags after the arguments; a single-dash long flag; a flag of another command.
	_, stderr, code := runW("restore", "nonexistent.tar", "-D", filepath.Join(t.TempDir(), "r"), "--no-sync")
	if code != 2 || !strings.Contains(stderr, "nonexistent.tar") {
		t.Errorf("flags after the file: exit %d, %q", code, stderr)
	}
	_, stderr, code = runW("restore", "-no-clean", "-D", "x")
	if code != 2 || !strings.Contains(stderr, "long flags take two dashes: --no-clean") {
		t.Errorf("-no-clean: exit %d, %q", code, stderr)
	}
	_, stderr, code = runW("verify", "--pgdata", "x")
	if code != 2 || !strings.Contains(stderr, "unknown flag: --pgdata") || !strings.Contains(stderr, "walweave verify --help") {
		t.Errorf("verify --pgdata: exit %d, %q", code, stderr)
	}
	for _, args := range [][]string{{"version", "x"}, {"fleet"}, {"fleet", "frobnicate"}, {}} {
		if _, stderr, code := runW(args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
}
