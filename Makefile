# Front door only: the build is Meson + Ninja.
#   make run    install what is missing, build, start `mxbait serve` on the embedded defaults
#   make test   install what is missing, build (ASan+UBSan, and clang for libFuzzer), run every test
#   make bench  benchmarks (print figures; not tests)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20

.PHONY: all run test deps deps-test build build-asan build-fuzz unit fuzz integration bench clean

all: build

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	./$(BUILD)/src/mxbait serve

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false

build-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --buildtype=debugoptimized -Dfuzz=true \
	    -Db_sanitize=address,undefined -Db_lundef=false

build-fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

test: deps-test
	$(MAKE) build build-asan build-fuzz
	/usr/bin/python3 tests/run-all.py --asan-build $(ASAN_BUILD) --fuzz-build $(FUZZ_BUILD) \
	    --fuzz-seconds $(FUZZ_SECONDS)

bench: deps-test build
	bench/run-all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
