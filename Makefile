# etcd-robustness. `make test` is what CI runs (.ci/run).
GO ?= go
ETCD_VERSION ?= v3.7.3
RUNS ?= 5
comma := ,

# Reading run's output (stdout; see "Reading the verdict" in README.md):
# OUTCOME is the first word of the first line, PASS, FAIL or INCONCLUSIVE.
# $(call STAGE_ROW,NAME) is the stage table's row of stage NAME: the name,
# then (columns are two or more spaces apart) the verdict ("timed out" is
# two words), what it checked ("4334 operations"), the time and the
# message. $(call CHECK_ROW,NAME,VERDICT) succeeds if the named check NAME
# ("watch/bookmarkable", an extended regexp) has that verdict: a named
# check that did not pass has its row under its stage, indented by two
# spaces. NOT_PASSED prints, indented, the first line, the report's path,
# every stage and named check whose verdict is not ok, and the faults not
# injected (not the WHY paragraph after them).
OUTCOME = sed -n '1s/:.*//p'
STAGE_ROW = grep -E '^$(1)  '
CHECK_ROW = grep -Eq '^  $(1) +$(2)  '
NOT_PASSED = awk '/^WHY / { exit } NF && $$1 != "STAGE" && $$2 != "ok" { print "  " $$0 }'

.PHONY: all build test test-unit lint-workflows test-robustness-exploratory bench run no-false-alarm clean test-browser throughput scale

all: build

build:
	$(GO) build -o bin/etcd-robustness ./cmd/etcd-robustness

# Unit tests (with the race detector), then every test: the end-to-end ones
# build etcd $(ETCD_VERSION) with failpoints into the cache on first use and
# start real clusters on 127.0.0.1.
test: lint-workflows
	$(GO) vet ./...
	$(GO) test -short -race -count=1 ./...
	# One package at a time: each starts real clusters, whose fault tests are
	# timing-sensitive on 2 cores, and ports are picked by binding and
	# releasing, so two packages starting clusters at once could collide.
	ETCD_ROBUSTNESS_VERSION=$(ETCD_VERSION) $(GO) test -p 1 -count=1 -timeout 30m -skip '^TestRobustnessExploratory$$' ./...
	# Two runs of the default scenario, explore, from fixed seeds, so that
	# CI exercises what users run and a red run can be replayed.
	ETCD_ROBUSTNESS_VERSION=$(ETCD_VERSION) $(GO) test -count=2 -timeout 20m -run '^TestRobustnessExploratory$$' ./robustness/ -args -seed $(TEST_EXPLORE_SEED)

# The first seed of make test's two exploratory runs (it runs this one and
# the next).
TEST_EXPLORE_SEED ?= 1

# actionlint (a tool dependency in go.mod) checks the CI workflows.
lint-workflows:
	$(GO) tool actionlint .github/workflows/*.yml

test-unit:
	$(GO) test -short -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./validate/ ./evidence/

# Each traffic profile at its high rate on 3 members for 20 s, no fault:
# prints the requests/s reached, the CPU share of the machine the harness
# process (clients and the cluster's proxies) used, and its CPU seconds per
# 1,000 requests (which other load on the machine distorts less); fails if
# the harness used more than 25% of the machine.
throughput:
	ETCD_ROBUSTNESS_VERSION=$(ETCD_VERSION) ETCD_ROBUSTNESS_THROUGHPUT=1 ETCD_ROBUSTNESS_THROUGHPUT_MAX_SHARE=25 $(GO) test -count=1 -v -run '^TestThroughput$$' -timeout 10m ./traffic/

# Issue 17's scale run: DURATION (60s; 300s for five minutes) of high-rate
# etcd traffic with watches on 3 members and three faults, kept. After the
# verdict it prints the run's operations, committed entries and watch
# responses, each stage's time, the check's share of the traffic time, the
# harness's peak RSS and the report's size (summary.json's "scale").
# Exits with run's status. It names the basic scenario, which the command
# ran when the issue was written: under the default, explore, the flags
# would leave etcd's settings, the placement and the compaction to the draw.
# SCALE_DIR receives the report (results); SCALE_FLAGS adds run flags
# (--expose-known-bugs: the lease TTLs the paused-leader-expiry known bug
# avoids under pause-leader).
DURATION ?= 60s
SCALE_SEED ?= 1
SCALE_DIR ?= results
SCALE_FLAGS ?=
scale: build
	@out=$$(mktemp); \
	./bin/etcd-robustness run --scenario basic --etcd-version $(ETCD_VERSION) --members 3 --traffic etcd --rate high --watch \
	  --failpoint kill,pause-leader,blackhole-member --duration $(DURATION) --seed $(SCALE_SEED) --keep --results-dir $(SCALE_DIR) $(SCALE_FLAGS) >$$out; status=$$?; \
	cat $$out; dir=$$(sed -n 's/^report: //p' $$out); rm -f $$out; echo; \
	if [ -n "$$dir" ]; then ./bin/etcd-robustness summary --scale "$$dir"; else echo "scale: no report was written"; fi; \
	exit $$status

# The default scenario, end to end, building etcd as needed.
run: build
	./bin/etcd-robustness run --etcd-version $(ETCD_VERSION)

# The regression suite (scenarios/regression.go): one target per past etcd
# bug, make test-robustness-issueNNNNN, pinned to the release that has it.
# It runs until a run is caught by the stage or named check the bug's entry
# names, or RUNS runs (default 10), and prints each run, the runs until
# caught, their time and what caught it; it fails if nothing caught it.
# FIXED=1 runs the regression's fixed release instead (the first with the fix,
# or a later one where that still has a bug the target sends): RUNS runs (default
# 20), failing if any does not pass. FIXED_VERSION=vX runs another fixed
# release. TRIES=5 repeats the runs-until-caught on fresh seeds and prints
# the median. SEED=S starts from seed S (default 1), so that a long FIXED=1
# set splits into parts: RUNS=10, then RUNS=10 SEED=11. Reports of runs
# that did not pass, and the runs' log, go to REGRESSION_DIR.
REGRESSION_ISSUES = 13766 14370 14685 15220 15247 15271 17529 17780 18089 19179 20221
REGRESSION_DIR ?= results/regression
TRIES ?= 1
FIXED ?=
FIXED_VERSION ?=
REGRESSION_TARGETS = $(addprefix test-robustness-issue,$(REGRESSION_ISSUES))
.PHONY: $(REGRESSION_TARGETS) test-robustness-regressions track-record
$(REGRESSION_TARGETS): test-robustness-issue%: build
	./bin/etcd-robustness regression --results-dir $(REGRESSION_DIR) \
	  $(if $(FIXED_VERSION),--etcd-version $(FIXED_VERSION),$(if $(FIXED),--fixed)) \
	  $(if $(filter command line,$(origin RUNS)),--runs $(RUNS)) $(if $(filter-out 1,$(TRIES)),--tries $(TRIES)) \
	  $(if $(SEED),--seed $(SEED)) $*

# Every regression target in turn (long: run it in parts on a shared machine).
test-robustness-regressions: $(REGRESSION_TARGETS)

# The track record: each regression's runs-until-caught five times on
# fresh seeds, with the median (one target after the other; long).
track-record: build
	@for i in $(REGRESSION_ISSUES); do ./bin/etcd-robustness regression --results-dir $(REGRESSION_DIR) --tries 5 $$i | tail -1; done

# The names the first reproductions had.
.PHONY: reproduce-14370 reproduce-15220 reproduce-15271
reproduce-14370: test-robustness-issue14370
reproduce-15220: test-robustness-issue15220
reproduce-15271: test-robustness-issue15271

# The same kind of run against a fixed release must pass every time.
no-false-alarm: build
	@fail=0; for i in $$(seq 1 $(RUNS)); do \
	  ./bin/etcd-robustness run --etcd-version $(ETCD_VERSION) --members 1 --failpoint kill --seed $$i || fail=$$((fail+1)); \
	done; echo "$(ETCD_VERSION), 1 member, kill: $$fail of $(RUNS) runs did not pass"; test $$fail -eq 0

clean:
	rm -rf bin results

# Opens index.html and history.html of a failing report in headless
# chromium (Debian's package, installed here if missing) and keeps a
# screenshot of each in the report. REPORT=DIR opens a saved report instead
# of a built one. Fails if chromium cannot be installed.
test-browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	@command -v chromium >/dev/null || { echo "test-browser: chromium is not installed"; exit 1; }
	ETCD_ROBUSTNESS_BROWSER=1 ETCD_ROBUSTNESS_BROWSER_REPORT=$(REPORT) $(GO) test -count=1 -run TestBrowser -v ./report/

.PHONY: test-faults every-failpoint

# Every fault test on real clusters, the whole gofail panic catalog included
# (make test runs a few of the panics).
test-faults:
	ETCD_ROBUSTNESS_VERSION=$(ETCD_VERSION) ETCD_ROBUSTNESS_FAULT_TESTS=1 $(GO) test -p 1 -count=1 -timeout 30m ./failpoint/ ./cluster/

# run --failpoint NAME, with 3 members, for every fault available on
# $(ETCD_VERSION). Prints one line per fault; fails if any does not pass.
every-failpoint: build
	@fail=0; for n in $$(./bin/etcd-robustness failpoints --etcd-version $(ETCD_VERSION) 2>/dev/null | awk '$$3 ~ /^yes/ {print $$1}'); do \
	  out=$$(./bin/etcd-robustness run --etcd-version $(ETCD_VERSION) --members 3 --failpoint $$n --seed 7 2>/dev/null); code=$$?; \
	  echo "$$n: exit $$code: $$(echo "$$out" | head -1 | cut -c1-160)"; test $$code -eq 0 || fail=$$((fail+1)); \
	done; echo "$$fail faults did not pass"; test $$fail -eq 0

.PHONY: test-robustness-issue14571 auth-matrix

# etcd #14571 (scenario auth-14571): with auth, a member that caught up from
# a snapshot kept a stale permission cache and diverged (v3.5.5; fixed in
# v3.5.6). AUTH_BUG_VERSION=v3.5.6 runs the same against the fixed release.
AUTH_BUG_VERSION ?= v3.5.5
AUTH_RUNS ?= 5
test-robustness-issue14571: build
	@pass=0; fail=0; other=0; for i in $$(seq 1 $(AUTH_RUNS)); do \
	  out=$$(./bin/etcd-robustness run --scenario auth-14571 --etcd-version $(AUTH_BUG_VERSION) --seed $$i --results-dir results/matrix/auth-14571 2>/dev/null); code=$$?; \
	  echo "seed $$i: exit $$code: $$(echo "$$out" | head -1 | cut -c1-200)"; \
	  case $$code in 0) pass=$$((pass+1));; 1) fail=$$((fail+1));; *) other=$$((other+1));; esac; \
	done; echo "etcd #14571 on $(AUTH_BUG_VERSION): $$fail of $(AUTH_RUNS) runs found a violation ($$pass passed, $$other other)"

# Auth runs: AUTH_TOKENS (simple and jwt) x AUTH_VERSIONS (v3.6.16, v3.7.3)
# x AUTH_MEMBERS (1 and 3) x AUTH_FAULTS (kill and random), watches, 8 s,
# AUTH_RUNS seeds each (from AUTH_SEED). One line per run, then one per
# combination (n of N passed); fails if any run does not pass. Reports of
# runs that did not pass are kept under MATRIX_DIR/auth.
AUTH_TOKENS ?= simple jwt
AUTH_VERSIONS ?= v3.6.16 v3.7.3
AUTH_MEMBERS ?= 1 3
AUTH_FAULTS ?= kill random
AUTH_SEED ?= 1
auth-matrix: build
	@bad=0; sum=""; for v in $(AUTH_VERSIONS); do for m in $(AUTH_MEMBERS); do for a in $(AUTH_TOKENS); do for f in $(AUTH_FAULTS); do pass=0; \
	  for i in $$(seq $(AUTH_SEED) $$(($(AUTH_SEED)+$(AUTH_RUNS)-1))); do \
	  out=$$(./bin/etcd-robustness run --scenario basic --auth $$a --etcd-version $$v --members $$m --failpoint $$f --traffic etcd --watch --duration 8s --seed $$i --results-dir $(MATRIX_DIR)/auth 2>/dev/null); code=$$?; \
	  echo "$$v $$m members $$a $$f seed $$i: exit $$code, $$(echo "$$out" | head -1 | cut -c1-160)"; \
	  if [ $$code -eq 0 ]; then pass=$$((pass+1)); else bad=$$((bad+1)); echo "$$out" | $(NOT_PASSED); fi; \
	done; sum="$$sum$$v $$m members $$a $$f: $$pass of $(AUTH_RUNS) passed\n"; done; done; done; done; \
	printf "$$sum"; echo "auth matrix: $$bad runs did not pass"; test $$bad -eq 0

.PHONY: reproduce-22209

# etcd #22209, found by the etcd profile here: v3.7's keys_only ranges leave
# each key's lease out. The traffic avoids keys_only ranges on affected
# releases by default; this runs with them, and expects a violation in
# most runs (and none on v3.6.16: make reproduce-22209 KNOWN_BUG_VERSION=v3.6.16).
KNOWN_BUG_VERSION ?= v3.7.3
reproduce-22209: build
	@found=0; for i in $$(seq 1 $(RUNS)); do \
	  ./bin/etcd-robustness run --scenario etcd --etcd-version $(KNOWN_BUG_VERSION) --expose-known-bugs --seed $$i >/dev/null 2>&1; \
	  test $$? -eq 1 && found=$$((found+1)); \
	done; echo "etcd #22209 on $(KNOWN_BUG_VERSION): $$found of $(RUNS) runs did not pass"

.PHONY: profile-matrix watch-matrix tls-matrix

# Each traffic profile against each release, on 1 and 3 members, with a
# kill and with a gofail panic, RUNS seeds each. One line per run; fails if
# any run does not pass. Every run's report is kept under MATRIX_DIR, and
# the target ends with `summary`'s table of how many runs each stage and
# named check checked something in (summary.html beside the reports).
MATRIX_DIR ?= results/matrix
MATRIX_VERSIONS ?= v3.6.16 v3.7.3
MATRIX_PROFILES ?= etcd kubernetes
MATRIX_FAULTS ?= kill raftBeforeSave:panic
profile-matrix: build
	@rm -rf $(MATRIX_DIR)/profile; fail=0; for p in $(MATRIX_PROFILES); do for v in $(MATRIX_VERSIONS); do for m in 1 3; do for f in $(MATRIX_FAULTS); do for i in $$(seq 1 $(RUNS)); do \
	  out=$$(./bin/etcd-robustness run --scenario $$p --etcd-version $$v --members $$m --failpoint $$f --seed $$i --keep --results-dir $(MATRIX_DIR)/profile 2>/dev/null); code=$$?; \
	  ops=$$(echo "$$out" | $(call STAGE_ROW,linearizability) | grep -Eo '[0-9]+ operations' | head -1); \
	  echo "$$p $$v members=$$m $$f seed=$$i: exit $$code, $$ops, $$(echo "$$out" | $(OUTCOME))"; \
	  test $$code -eq 0 || { fail=$$((fail+1)); echo "$$out" | $(NOT_PASSED); }; \
	done; done; done; done; done; echo "profile-matrix: $$fail runs did not pass"; \
	./bin/etcd-robustness summary --html $(MATRIX_DIR)/profile/summary.html $(MATRIX_DIR)/profile | sed -n '/^CHECK/,$$p'; test $$fail -eq 0

# Watch traffic with random faults against each release on 1 and 3
# members, WATCH_RUNS seeds each. On 3 members a random fault is followed
# by blackhole-member, which under watch traffic cuts a member off for at
# least 8 s, so the RequireLeader check has an isolation to judge (random
# rarely draws one: the pool is mostly gofail points).
WATCH_RUNS ?= 10
WATCH_FAULTS_1 ?= random
WATCH_FAULTS_3 ?= random,blackhole-member
watch-matrix: build
	@rm -rf $(MATRIX_DIR)/watch; fail=0; for v in $(MATRIX_VERSIONS); do for m in 1 3; do f=$$( [ $$m -eq 1 ] && echo $(WATCH_FAULTS_1) || echo $(WATCH_FAULTS_3) ); for i in $$(seq 1 $(WATCH_RUNS)); do \
	  out=$$(./bin/etcd-robustness run --scenario watch --etcd-version $$v --members $$m --failpoint $$f --seed $$i --keep --results-dir $(MATRIX_DIR)/watch 2>/dev/null); code=$$?; \
	  echo "watch $$v members=$$m $$f seed=$$i: exit $$code, $$(echo "$$out" | $(OUTCOME))"; \
	  test $$code -eq 0 || { fail=$$((fail+1)); echo "$$out" | $(NOT_PASSED); }; \
	done; done; done; echo "watch-matrix: $$fail runs did not pass"; \
	./bin/etcd-robustness summary --html $(MATRIX_DIR)/watch/summary.html $(MATRIX_DIR)/watch | sed -n '/^CHECK/,$$p'; test $$fail -eq 0

# Client and peer TLS (--tls: certificates made for each run, kept in its
# report's tls/) against each release on 1 and 3 members, with a kill and
# a random fault, RUNS seeds each, on the default scenario's draws for the
# seed. One line per run; fails if any run does not pass; every report is
# kept under MATRIX_DIR/tls.
TLS_FAULTS ?= kill random
tls-matrix: build
	@rm -rf $(MATRIX_DIR)/tls; fail=0; for v in $(MATRIX_VERSIONS); do for m in 1 3; do for f in $(TLS_FAULTS); do for i in $$(seq 1 $(RUNS)); do \
	  out=$$(./bin/etcd-robustness run --tls --etcd-version $$v --members $$m --failpoint $$f --seed $$i --keep --results-dir $(MATRIX_DIR)/tls 2>/dev/null); code=$$?; \
	  echo "tls $$v members=$$m $$f seed=$$i: exit $$code, $$(echo "$$out" | $(OUTCOME))"; \
	  test $$code -eq 0 || { fail=$$((fail+1)); echo "$$out" | $(NOT_PASSED); }; \
	done; done; done; done; echo "tls-matrix: $$fail runs did not pass"; \
	./bin/etcd-robustness summary --html $(MATRIX_DIR)/tls/summary.html $(MATRIX_DIR)/tls | sed -n '/^CHECK/,$$p'; test $$fail -eq 0

# The default scenario, explore, RUNS times: each run draws its cluster,
# traffic, watches, 1-3 faults and etcd settings from its seed (see
# scenarios/explore.go). SHARD=i/n takes every n-th seed from shard i, so
# that machines split a matrix; SEED=S starts from S (default: the clock);
# ETCD_VERSION may list several releases (v3.6.16,v3.7.3) for members to
# be drawn from. One line per run with running totals, then `summary`'s
# table; every report is kept under EXPLORE_DIR. Fails if a run did not pass.
SHARD ?= 0/1
SEED ?=
EXPLORE_DIR ?= $(MATRIX_DIR)/exploratory
test-robustness-exploratory: build
	@rm -rf $(EXPLORE_DIR); mkdir -p $(EXPLORE_DIR); \
	ETCD_ROBUSTNESS_VERSION=$(ETCD_VERSION) ETCD_ROBUSTNESS_KEEP=1 $(GO) test -count=$(RUNS) -v -timeout 0 -run '^TestRobustnessExploratory$$' ./robustness/ \
	  -args -shard $(SHARD) -results-dir $(abspath $(EXPLORE_DIR)) $(if $(SEED),-seed $(SEED)) > $(EXPLORE_DIR)/go-test.log 2>&1; code=$$?; \
	grep -E 'exploratory_test.go:[0-9]+: (run |seed .* draws)|^(--- FAIL|FAIL|ok) ' $(EXPLORE_DIR)/go-test.log | sed -E 's/^ +exploratory_test.go:[0-9]+: /  /'; \
	./bin/etcd-robustness summary --html $(EXPLORE_DIR)/summary.html $(EXPLORE_DIR) | sed -n '/^DRAWN/,$$p'; \
	echo "test-robustness-exploratory: go test exit $$code (log: $(EXPLORE_DIR)/go-test.log)"; test $$code -eq 0

.PHONY: test-robustness-releases test-robustness-release-3.4 test-robustness-release-3.5 test-robustness-release-3.6 test-robustness-release-3.7

# The exploratory runs against the newest patch release of each line that
# the Go module proxy serves (v3.4 only as the pseudo-version of v3.4.12),
# RUNS runs each, reports under results/matrix/release-3.N.
RELEASE_3.4 ?= v3.4.12
RELEASE_3.5 ?= v3.5.35
RELEASE_3.6 ?= v3.6.16
RELEASE_3.7 ?= v3.7.3
RELEASE_LINES = 3.4 3.5 3.6 3.7
$(addprefix test-robustness-release-,$(RELEASE_LINES)): build
	$(MAKE) test-robustness-exploratory ETCD_VERSION=$(RELEASE_$(@:test-robustness-release-%=%)) EXPLORE_DIR=$(MATRIX_DIR)/release-$(@:test-robustness-release-%=%) RUNS=$(RUNS) SHARD=$(SHARD) $(if $(SEED),SEED=$(SEED))

test-robustness-releases: test-robustness-release-3.4 test-robustness-release-3.5 test-robustness-release-3.6 test-robustness-release-3.7

.PHONY: test-downgrade test-robustness-downgrade

# The online downgrade faults on real binaries, without traffic
# (failpoint/downgrade_test.go): downgrade-upgrade and downgrade-disturbed on 3 members of each
# release in DOWNGRADE_FROM, to the newest release of the line before
# (built on first use). About 20 s each.
DOWNGRADE_FROM ?= v3.7.3 v3.6.16
test-downgrade:
	@for v in $(DOWNGRADE_FROM); do ETCD_ROBUSTNESS_VERSION=$$v ETCD_ROBUSTNESS_FAULT_TESTS=1 $(GO) test -count=1 -timeout 10m -run '^TestDowngradeOnRealBinaries$$' ./failpoint/ || exit 1; done

# The downgrade and downgrade-upgrade faults under the exploratory draws
# (traffic, watches, etcd settings from the seed) on 3 members of each
# release in DOWNGRADE_FROM, seeds 1 to DOWNGRADE_RUNS. With
# DOWNGRADE_MIXED=v3.6.16 the members are drawn from both releases
# instead (the cluster is already at the lower cluster version). One line
# per run; every report is kept under DOWNGRADE_DIR. Fails if a run did
# not pass.
DOWNGRADE_RUNS ?= 10
DOWNGRADE_FAULTS ?= downgrade downgrade-upgrade
DOWNGRADE_DIR ?= $(MATRIX_DIR)/downgrade
DOWNGRADE_SEED ?= 1
test-robustness-downgrade: build
	@fail=0; for v in $(DOWNGRADE_FROM); do for f in $(DOWNGRADE_FAULTS); do for i in $$(seq $(DOWNGRADE_SEED) $$(($(DOWNGRADE_SEED)+$(DOWNGRADE_RUNS)-1))); do \
	  out=$$(./bin/etcd-robustness run --etcd-version $$v$(if $(DOWNGRADE_MIXED),$(comma)$(DOWNGRADE_MIXED)) --members 3 --failpoint $$f --seed $$i --keep --results-dir $(DOWNGRADE_DIR) 2>/dev/null); code=$$?; \
	  echo "$$v$(if $(DOWNGRADE_MIXED),$(comma)$(DOWNGRADE_MIXED)) $$f seed=$$i: exit $$code, $$(echo "$$out" | $(OUTCOME)): $$(echo "$$out" | head -1 | cut -d: -f2- | cut -c1-120)"; \
	  test $$code -eq 0 || { fail=$$((fail+1)); echo "$$out" | $(NOT_PASSED); }; \
	done; done; done; echo "test-robustness-downgrade: $$fail runs did not pass"; test $$fail -eq 0

.PHONY: test-storage-version-guard

# The storage-version guard (releases/guard_test.go): data written by one
# release (1 member), then the member started on another release's binary.
# One GUARD line per (data version, binary version) pair: refused, with
# the error line etcd logged, or started; and whether the data dir is
# unchanged (every file's hash). Builds v3.4.12, v3.5.35, v3.6.16 and v3.7.3 on
# first use.
test-storage-version-guard:
	@ETCD_ROBUSTNESS_RELEASE_TESTS=1 $(GO) test -count=1 -v -timeout 30m -run '^TestStorageVersionGuard$$' ./releases/ > results-guard.log 2>&1; code=$$?; \
	grep -E '^GUARD ' results-guard.log; grep -E '^(--- FAIL|FAIL|ok) ' results-guard.log; rm -f results-guard.log; test $$code -eq 0
