# walweave: the two commands of the README, and a few more.
GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: demo test test-matrix fuzz bench build vet

# The main job: a real backup of a scratch PostgreSQL under write load, restored and checked.
demo:
	./scripts/setup.sh
	./scripts/demo.sh

# Every test, against a real PostgreSQL started by internal/pgtest.
test:
	./scripts/setup.sh
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) ./...

# Every real-server package against each PostgreSQL in PG_MATRIX (15 is Debian's; 16, 17 and 18
# are fetched into .cache/pg by scripts/setup-pg-matrix.sh), then the refusal test against 14.
PG_MATRIX ?= 15 16 17 18 14
test-matrix:
	./scripts/setup.sh
	./scripts/setup-pg-matrix.sh $(filter-out 15,$(PG_MATRIX))
	TEST_TIMEOUT=$(TEST_TIMEOUT) ./scripts/test-matrix.sh $(PG_MATRIX)

build:
	$(GO) build ./...

vet:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

bench:
	./scripts/setup.sh
	$(GO) run ./bench

fuzz:
	$(GO) test -run XXX -fuzz FuzzReader -fuzztime 60s ./tarw/
	$(GO) test -run XXX -fuzz FuzzMessageReader -fuzztime 60s ./pgrepl/
	$(GO) test -run XXX -fuzz FuzzVerify -fuzztime 60s ./verify/
	$(GO) test -run XXX -fuzz FuzzWAL -fuzztime 60s ./verify/
