# walweave: the two commands of the README, and a few more.
GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: demo test test-matrix fuzz bench build vet docs

# The main job: a real backup of a scratch PostgreSQL under write load, restored and checked.
demo:
	./scripts/setup.sh
	./scripts/demo.sh

# Every test, against a real PostgreSQL started by internal/pgtest.
test:
	./scripts/setup.sh
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./...

# Every real-server package against each PostgreSQL in PG_MATRIX (15 is Debian's; 16, 17 and 18
# are fetched into .cache/pg by scripts/setup-pg-matrix.sh; 17's and 18's own pg_verifybackup,
# pg_waldump and pg_combinebackup, the oracles for their backups, are built from Debian's
# source once per machine), then the refusal test against 14.
PG_MATRIX ?= 15 16 17 18 14
test-matrix:
	./scripts/setup.sh --matrix $(filter-out 15,$(PG_MATRIX))
	TEST_TIMEOUT=$(TEST_TIMEOUT) ./scripts/test-matrix.sh $(PG_MATRIX)

build:
	$(GO) build ./...

vet:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

bench:
	./scripts/setup.sh
	$(GO) run ./bench

# Every fuzzer for FUZZTIME each (a parser that reads input from outside: tar, protocol
# messages, PostgreSQL's formats, the checker, a chain stream's head, the lz4 decoder).
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The CLI reference in docs/cli, generated from the commands (cobra's doc package); a test
# (TestCLIReferenceUpToDate) fails when it is out of date.
docs:
	$(GO) test ./cmd/walweave -run '^TestCLIReferenceUpToDate$$' -count=1 -args -update-docs
