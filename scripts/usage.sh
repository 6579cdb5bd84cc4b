# Sourced first by the project's shell scripts (bench/lib.sh does it for every bench/*.sh):
# `-h` / `--help` prints the script's opening comment and runs nothing, and an argument
# the script does not take is refused (exit status 2) instead of being ignored — before
# this, `bench/compare.sh --help` started the whole ten-minute comparison, and a mistyped
# flag ran with the defaults. Settings are environment variables, each script's comment
# names them. A script that takes arguments sets USAGE_ARGS before sourcing: the flags it
# takes ("--ci"), or "any" when it checks its own.
usage_print() {  # SCRIPT: its opening comment, without the #! line and the "# "
  awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"
}

usage_check() {  # SCRIPT ARGS…
  local script=$1 arg
  shift
  for arg in "$@"; do
    case $arg in -h|--help) usage_print "$script"; exit 0 ;; esac
  done
  [ "${USAGE_ARGS:-}" = any ] && return 0
  for arg in "$@"; do
    case " ${USAGE_ARGS:-} " in
      *" $arg "*) ;;
      *) echo "$(basename "$script"): unknown argument '$arg' (it takes ${USAGE_ARGS:-none}; settings are environment variables: --help)" >&2
         exit 2 ;;
    esac
  done
}

usage_check "${BASH_SOURCE[${#BASH_SOURCE[@]} - 1]}" "$@"  # the script that was run, its arguments
