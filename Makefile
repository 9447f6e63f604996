# walweave: the two commands of the README, and a few more.
GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: demo test fuzz bench build vet

# The main job: a real backup of a scratch PostgreSQL under write load, restored and checked.
demo:
	./scripts/setup.sh
	./scripts/demo.sh

# Every test, against a real PostgreSQL started by internal/pgtest.
test:
	./scripts/setup.sh
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

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
