# The project's commands. Each target installs what it needs first
# (scripts/deps.sh is idempotent and quick when everything is there).
#
#   make run       build and start ratelimitd (config/ratelimiter.yaml,
#                  memory store) on 127.0.0.1:8080; prints curl examples
#   make test      lint + every test: default build, ASan+UBSan, TSan,
#                  coverage gate
#   make bench     benchmarks (JSON lines on stdout)
#   make bench-daemon  wrk: ratelimitd next to nginx `return 200`
#   make loadtest  open-loop load tests (load/loadgen), JSON lines in load/results/
#   make coverage  line coverage of src/ with gcovr; fails below 90%
#   make lint      clang-tidy, cppcheck, clang-format check

JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all deps build run test bench bench-daemon loadtest fuzz coverage lint format clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run.sh $(BUILD)

test: deps
	@scripts/test.sh

bench: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS)
	@scripts/bench.sh build-bench

bench-daemon: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j $(JOBS) --target ratelimitd
	@scripts/bench_daemon.sh build-bench

loadtest: deps
	@scripts/loadtest.sh all

fuzz: deps
	@scripts/fuzz.sh

coverage: deps
	@scripts/coverage.sh

lint: deps
	@scripts/lint.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-* coverage
