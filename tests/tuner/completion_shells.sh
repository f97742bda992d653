#!/usr/bin/env bash
# Shell completion (tuner/completion.h) in the real shells: the script `tune completion SHELL`
# prints is loaded into bash, zsh and fish, and each completes the same command lines in a
# scratch directory holding a spec, another .json, a text file and a finished experiment (a
# two-trial run of examples/curve.json). bash runs its completion function on COMP_LINE; zsh its
# function with `compadd` and `compdef` stubbed (the completion system itself needs a terminal);
# fish its own `complete -C`. Exits 1 naming the shell, the line and what came back.
#   tests/tuner/completion_shells.sh BIN_DIR SOURCE_DIR
set -uo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
for shell in zsh fish; do
  command -v $shell >/dev/null || { echo "completion_shells: $shell is not installed (bash scripts/setup.sh)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export PATH="$bin:$PATH"
export HOME=$work  # "~/" below is this directory (and the shells keep their state here)
cat > space.json <<'EOF'
{"name": "demo", "metric": "loss", "mode": "min",
 "trainer": {"max_epochs": 10, "optimizer": {"type": "adam"}},
 "scheduler": {"type": "asha", "max_t": 27}}
EOF
mkdir specs && echo '{}' > specs/other.json && echo notes > notes.txt
# A composed spec (tuner/compose.h): a group whose options complete after its '='.
mkdir search && echo '{"algorithm": "random"}' > search/random.json && echo '{"algorithm": "tpe"}' > search/tpe.json
echo '{"defaults": [{"search": "random"}], "name": "composed"}' > composed.json
tune run "$src/examples/curve.json" num_samples=2 max_concurrent=2 scheduler.max_t=2 \
  trainer.max_epochs=2 trainer.sleep_ms=0 --name exp1 --storage tune_results >/dev/null 2>&1 ||
  { echo "completion_shells: the tiny curve run failed" >&2; exit 1; }

bash_complete() {  # LINE -> the candidates bash would offer, one a line
  bash -c 'eval "$(tune completion bash)"; COMP_LINE=$1; COMP_POINT=${#1}; _tune_complete
           printf "%s\n" "${COMPREPLY[@]}"' _ "$1"
}
zsh_complete() { zsh_raw_complete "$1" | sed 's/+$//'; }
zsh_raw_complete() {
  zsh -f -c 'compdef() { :; }
    compadd() {  # prints the words, "+" after each added without a space
      local suffix=""; while [[ $1 != -- ]]; do [[ $1 == -S ]] && { suffix="+"; shift; }; shift; done
      shift; local w; for w in "$@"; do print -r -- "$w$suffix"; done; }
    eval "$(tune completion zsh)"
    words=(${(z)1}); [[ $1 == *" " ]] && words+=("")
    CURRENT=${#words}; _tune' _ "$1"
}
fish_complete() {
  fish -N -c 'tune completion fish | source; complete -C"$argv[1]"' "$1" | cut -f1
}

failures=0
# expect SHELL LINE WORD...: each WORD among the candidates for LINE.
expect() {
  local shell=$1 line=$2 got word
  shift 2
  got=$(${shell}_complete "$line")
  for word in "$@"; do
    if ! grep -qxF -- "$word" <<<"$got"; then
      printf 'completion_shells: %s: "%s" does not offer "%s"; it offered:\n%s\n' "$shell" "$line" "$word" "$got" >&2
      failures=$((failures + 1))
    fi
  done
}
# refuse SHELL LINE WORD: WORD is not among them.
refuse() {
  local got
  got=$(${1}_complete "$2")
  if grep -qxF -- "$3" <<<"$got"; then
    printf 'completion_shells: %s: "%s" offers "%s"\n' "$1" "$2" "$3" >&2
    failures=$((failures + 1))
  fi
}

for shell in bash zsh fish; do
  expect $shell "tune " run resume show train completion
  expect $shell "tune r" run resume
  expect $shell "tune run sp" space.json specs/
  refuse $shell "tune run " notes.txt
  expect $shell "tune run specs/" specs/other.json
  expect $shell "tune run space.json tr" trainer.
  expect $shell "tune run space.json trainer.o" trainer.optimizer.
  expect $shell "tune run space.json trainer.optimizer.t" trainer.optimizer.type=
  expect $shell "tune run space.json --lau" --launcher
  expect $shell "tune run space.json --launcher " local slurm
  expect $shell "tune run space.json --gpus 2 -m sch" scheduler.
  expect $shell "tune resume " tune_results/exp1
  expect $shell "tune show tune_results/exp1 --sort config/" config/x1 config/x2 config/lr
  expect $shell "tune show tune_results/exp1 --columns trial_id,lo" trial_id,loss
  expect $shell "tune show tune_results/exp1 --order " asc desc
  expect $shell "tune completion " bash fish zsh
  expect $shell "tune train space.json sch" scheduler.
  expect $shell "tune run composed.json sea" search= search.
  expect $shell "tune run composed.json +sea" +search=
  expect $shell "tune run ~/sp" "~/space.json" "~/specs/"   # ~ left for the shell to expand
  expect $shell "tune run ~/space.json sch" scheduler.
done
# Values after '=': bash replaces only what follows the '=' (COMP_WORDBREAKS), the others the
# whole word.
expect bash "tune run space.json trainer.max_epochs=" 10
expect bash "tune run space.json --launcher=s" slurm
expect bash "tune run composed.json search=" random tpe
for shell in zsh fish; do
  expect $shell "tune run composed.json search=" search=random search=tpe
  expect $shell "tune run space.json trainer.max_epochs=" trainer.max_epochs=10
  expect $shell "tune run space.json --launcher=s" --launcher=slurm
done
# zsh adds a key (trainer.) without the space after it, a whole word (run) with one.
expect zsh_raw "tune run space.json tr" "trainer.+"
expect zsh_raw "tune ru" run

if ((failures)); then
  echo "completion_shells: $failures failed" >&2
  exit 1
fi
echo "completion_shells: bash, zsh and fish complete every line"
