# Shared by the CLI tests (sourced; not a test itself): a temporary directory removed at exit,
# pass/fail counters, and expect. Each test is run as `bash TEST.sh PNN_BINARY SOURCE_DIR`.
set -uo pipefail
pnn=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$src/examples/vowels-oscillator.yaml
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

# expect CODE PATTERN -- command...: runs it, checks the exit code (CODE may list alternatives, as
# '65|69') and that stderr matches the extended regex PATTERN ("" matches anything);
# stdout and stderr stay in $tmp/out and $tmp/err
expect() {
  local code=$1 pattern=$2; shift 3
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [[ "$rc" =~ ^($code)$ ]] && { [ -z "$pattern" ] || grep -qE -- "$pattern" "$tmp/err"; }; then ok
  else bad "$* -> exit $rc (want $code), stderr: $(tail -c 600 "$tmp/err") (want /$pattern/)"; fi
}

# the end of every test: the counts, and the exit status
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
