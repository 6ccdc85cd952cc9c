# shellcheck shell=bash
# Sourced by the load scripts: with a negative nice value, run the rest of
# the script in a session of its own whose autogroup gets that nice value.
# With sched_autogroup_enabled (Debian's default) the scheduler shares the
# CPU between sessions first, so a plain `nice -n -10` only ranks processes
# inside our own session and does nothing against other sessions' builds.
# Usage: rl_priority NICE "$0" "$@"   (re-executes the script once)
rl_priority() {
  local nice=$1
  shift
  [ "$nice" -lt 0 ] && [ -w /proc/self/autogroup ] || return 0
  if [ -z "${RL_PRIORITY_SESSION:-}" ]; then
    RL_PRIORITY_SESSION=1 exec setsid -w "$@"
  fi
  echo "$nice" 2>/dev/null >/proc/self/autogroup ||
    echo "priority: cannot set the autogroup nice to $nice (not root?)" >&2
}
