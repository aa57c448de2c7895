#!/usr/bin/env bash
# The OCI runtime-tools validation suite against one runtime (issue 12):
#
#   sudo scripts/oci-validation.sh RUNTIME          e.g. runc, crun, dist/capsule-runc
#
# Builds opencontainers/runtime-tools' validation/ programs (once, into a cache outside the
# repository), runs each against RUNTIME with a per-program timeout, and prints one line per
# program (pass, fail or skip; a failure with its `not ok` TAP lines) and a last line
# `N of M passed`. See docs/oci-validation.md for what the counts mean.
#
# The suite calls the runtime with runc's command line and no global flags (create --bundle B
# [--pid-file F] ID, start, state, kill ID SIG, delete [--force]), so RUNTIME is called
# through a small wrapper that this script writes into its temp dir. The wrapper
#   - adds `--root STATE` (a private state dir, so that nothing mixes with the host's
#     /run/runc or /run/crun and every leftover container can be listed and deleted),
#   - moves itself into the cgroup /capsule-oci-validation of every hierarchy before it execs
#     the runtime: runc and crun put a container without linux.cgroupsPath, or with a relative
#     one (the linux_cgroups_relative_* programs), under their own cgroup, which on this machine
#     is a memory cgroup under process_api that must never get children,
#   - sets linux.cgroupsPath to /capsule-oci-validation/ID in config.json on create and run when
#     the suite left it unset (the programs that test cgroups set it themselves and keep theirs).
#
# Environment:
#   OCI_VALIDATION_TIMEOUT   seconds per program (default 120)
#   OCI_VALIDATION_ONLY      space-separated program names to run (default: all)
#   OCI_VALIDATION_KEEP_TAP  a directory to copy every program's TAP and stderr to
#   OCI_VALIDATION_CACHE     build cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/capsule/oci-validation)
#   OCI_RUNTIME_TOOLS_GIT    the runtime-tools git dir (default: the fetched mirror below)
#   OCI_RUNTIME_TOOLS_REF    the commit to build (default: the newest first-parent commit of
#                            HEAD whose go.mod the installed Go can build; see the docs)
set -euo pipefail

die() {
  echo "oci-validation: $*" >&2
  exit 2
}

[[ $# -eq 1 ]] || die "usage: scripts/oci-validation.sh RUNTIME (a runtime with runc's command line, e.g. runc)"
[[ $(id -u) -eq 0 ]] || die "the suite creates containers and cgroups: run it as root"
runtime=$(command -v -- "$1" || true)
[[ -n $runtime && -x $runtime ]] || die "RUNTIME '$1' is not an executable file or a command on PATH"
runtime=$(realpath -- "$runtime")
command -v go >/dev/null || die "go is not installed (Debian: apt-get install golang-go)"
command -v jq >/dev/null || die "jq is not installed (Debian: apt-get install jq)"

git_dir=${OCI_RUNTIME_TOOLS_GIT:-/work/.mirror/opencontainers+runtime-tools/repo}
git --git-dir="$git_dir" rev-parse -q --verify HEAD >/dev/null 2>&1 ||
  die "no runtime-tools git dir at $git_dir; fetch github:opencontainers/runtime-tools or set OCI_RUNTIME_TOOLS_GIT"
per_test=${OCI_VALIDATION_TIMEOUT:-120}
[[ $per_test =~ ^[1-9][0-9]*$ ]] || die "OCI_VALIDATION_TIMEOUT must be a whole number of seconds, got '$per_test'"
cache=${OCI_VALIDATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/capsule/oci-validation}

# The newest commit the installed Go can build: runtime-tools' go.mod went from `go 1.19` to
# `go 1.21` (and its vendored moby/sys/capability imports the 1.21 standard library's slices),
# and Debian 12's golang-go is 1.19.
pick_ref() {
  local have c want
  have=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  while read -r c; do
    want=$(git --git-dir="$git_dir" show "$c:go.mod" 2>/dev/null | sed -nE 's/^go 1\.([0-9]+).*/\1/p')
    if [[ -n $want && $want -le $have ]]; then
      echo "$c"
      return
    fi
  done < <(git --git-dir="$git_dir" rev-list --first-parent HEAD)
  die "no commit of runtime-tools builds with $(go env GOVERSION)"
}
ref=$(git --git-dir="$git_dir" rev-parse --verify "${OCI_RUNTIME_TOOLS_REF:-$(pick_ref)}^{commit}") ||
  die "OCI_RUNTIME_TOOLS_REF '${OCI_RUNTIME_TOOLS_REF:-}' is not a commit in $git_dir"
suite=$cache/$ref

build_suite() {
  local src name
  src=$(mktemp -d "${TMPDIR:-/tmp}/capsule-oci-build-XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$src'" RETURN
  echo "oci-validation: building runtime-tools ${ref:0:12} into $suite" >&2
  git --git-dir="$git_dir" archive "$ref" | tar -x -C "$src"
  mkdir -p "$suite.partial/validation"
  (
    cd "$src"
    export GOFLAGS=-mod=vendor GOPROXY=off GO111MODULE=on GOCACHE=$cache/go-build GOTOOLCHAIN=local
    # runtimetest runs inside the containers' rootfs: static, as the Makefile builds it.
    CGO_ENABLED=0 go build -tags "netgo osusergo" -o "$suite.partial/runtimetest" ./cmd/runtimetest
    for dir in validation/*/; do
      name=$(basename "$dir")
      [[ $name == util || ! -f $dir/$name.go ]] && continue
      go build -o "$suite.partial/validation/$name.t" "./$dir$name.go"
    done
    cp "rootfs-$(go env GOARCH).tar.gz" "$suite.partial/"
  )
  rm -rf "$suite"
  mv "$suite.partial" "$suite"
}
[[ -x $suite/runtimetest ]] || build_suite
# From here on every step checks what it needs; a cleanup step that finds nothing is no error.
set +e

# --- the run: everything it makes lives under $work or in the cgroups named below ----------
cg_base=capsule-oci-validation
# The top-level cgroups the suite's programs make: its absolute cgroupsPath
# (runtime-tools cgroups.AbsCgroupPath, /cgrouptest) and, in the cgroup2 hierarchy of a hybrid
# host, its relative one (cgroups.RelCgroupPath, testdir/...), which runc 1.1 puts under the
# root there whatever cgroup it runs in.
cg_suite=(cgrouptest testdir)
cg_roots=()
while IFS= read -r line; do
  post=${line#* - }
  fstype=${post%% *}
  [[ $fstype == cgroup || $fstype == cgroup2 ]] || continue
  set -- $line
  # only the host's hierarchies: tests elsewhere on the machine mount cgroup filesystems of
  # their own in temp dirs
  [[ $5 == /sys/fs/cgroup/* || $5 == /sys/fs/cgroup ]] && cg_roots+=("$5")
done </proc/self/mountinfo

# Before anything is made (the cleanup removes these names): they must not exist yet.
for root in "${cg_roots[@]}"; do
  for d in "$cg_base" "${cg_suite[@]}"; do
    [[ -e $root/$d ]] && die "cgroup $root/$d exists already (another run, or not this suite's): remove it first"
  done
done

# crun 1.8 refuses a hybrid host whose cgroup2 hierarchy has any controller ("cgroups in hybrid
# mode not supported, drop all controllers from cgroupv2"); on this machine hugetlb, which no v1
# hierarchy mounts, sits there. For crun the wrapper therefore runs the runtime in a private
# mount namespace without /sys/fs/cgroup/unified, so that crun sees a cgroup v1 host.
hide_unified=${OCI_VALIDATION_HIDE_UNIFIED:-}
if [[ -z $hide_unified ]]; then
  hide_unified=0
  if [[ $(basename "$runtime") == crun && -n $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null) ]]; then
    hide_unified=1
  fi
fi
[[ $hide_unified == 1 ]] &&
  echo "oci-validation: runs $(basename "$runtime") in a private mount namespace without /sys/fs/cgroup/unified (its controllers: $(tr '\n' ' ' </sys/fs/cgroup/unified/cgroup.controllers))"

work=$(mktemp -d "${TMPDIR:-/tmp}/capsule-oci-validation-XXXXXX")
mkdir -p "$work/tmp" "$work/state" "$work/out"
# The bundles go to $work/tmp; as under /tmp, the path to them must be searchable by anyone: a
# container with a user namespace (linux_uid_mappings, linux_ns_nopath) bind-mounts its bundle
# as a uid that is not root outside.
chmod 0755 "$work" "$work/tmp"
# Mount points before the run: anything new under $work, or named like the suite's bundles
# (ocitest*), afterwards is a leak (other mounts on a shared machine come and go on their own).
mounts_before=$(awk '{print $5}' /proc/self/mountinfo | sort -u)

# Remove a cgroup tree depth-first, killing what is left in it first (only ever the cgroups
# named above, which the pre-check showed were not there before the run).
remove_cgroup_tree() {
  local dir=$1 d pid i
  [[ -d $dir ]] || return 0
  for i in 1 2 3 4 5; do
    while IFS= read -r d; do
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$d/cgroup.procs"
    done < <(find "$dir" -depth -type d 2>/dev/null)
    # a frozen v1 freezer cgroup holds SIGKILLed processes until thawed
    [[ -f $dir/freezer.state ]] && find "$dir" -name freezer.state -exec sh -c 'echo THAWED >"$1"' _ {} \; 2>/dev/null
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $dir ]] || return 0
    sleep 0.2
  done
  echo "oci-validation: could not remove cgroup $dir" >&2
}

# Containers the runtime still has, mounts under $work, cgroups the runtimes made.
cleanup_after_program() {
  local id
  for id in $("$work/runtime" list -q 2>/dev/null); do
    "$work/runtime" delete --force "$id" >/dev/null 2>&1 || true
  done
  # innermost first; lazily, as a container's propagated mount may still be busy
  grep -F " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  local root
  for root in "${cg_roots[@]}"; do
    for d in "${cg_suite[@]}"; do remove_cgroup_tree "$root/$d"; done
    # keep the base (the wrapper joins it), remove what the runtimes made below it
    if [[ -d $root/$cg_base ]]; then
      find "$root/$cg_base" -mindepth 1 -maxdepth 1 -type d | while read -r d; do remove_cgroup_tree "$d"; done
    fi
  done
}

cleanup_all() {
  set +e
  cleanup_after_program
  for root in "${cg_roots[@]}"; do remove_cgroup_tree "$root/$cg_base"; done
  rm -rf --one-file-system "$work"
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

for root in "${cg_roots[@]}"; do
  mkdir -p "$root/$cg_base"
  # a v1 cpuset cgroup takes no tasks until it has cpus and mems
  if [[ -f $root/$cg_base/cpuset.cpus ]]; then
    cat "$root/cpuset.cpus" >"$root/$cg_base/cpuset.cpus"
    cat "$root/cpuset.mems" >"$root/$cg_base/cpuset.mems"
  fi
done

cat >"$work/runtime" <<EOF
#!/usr/bin/env bash
# Written by scripts/oci-validation.sh for one run; see there.
set -e
for root in ${cg_roots[*]}; do echo \$\$ >"\$root/$cg_base/cgroup.procs"; done
sub= bundle=. id= skip=
for a in "\$@"; do
  if [[ -n \$skip ]]; then
    [[ \$skip == bundle ]] && bundle=\$a
    skip=
    continue
  fi
  case \$a in
    -b | --bundle) skip=bundle ;;
    --bundle=*) bundle=\${a#--bundle=} ;;
    --pid-file | --console-socket | --root | --log | --log-format | --preserve-fds) skip=value ;;
    -*) ;;
    *) if [[ -z \$sub ]]; then sub=\$a; else id=\$a; fi ;;
  esac
done
if [[ \$sub == create || \$sub == run ]] && [[ -f \$bundle/config.json && -n \$id ]]; then
  if [[ \$(jq -r '.linux.cgroupsPath // ""' "\$bundle/config.json") == "" ]]; then
    jq --arg p "/$cg_base/\$id" '.linux.cgroupsPath = \$p' "\$bundle/config.json" >"\$bundle/config.json.cg"
    mv "\$bundle/config.json.cg" "\$bundle/config.json"
  fi
fi
if [[ $hide_unified == 1 ]]; then
  # --propagation private: the umount stays in this namespace (unshare(1))
  exec unshare --mount --propagation private sh -c 'umount -l /sys/fs/cgroup/unified && exec "\$@"' sh \
    "$runtime" --root "$work/state" "\$@"
fi
exec "$runtime" --root "$work/state" "\$@"
EOF
chmod +x "$work/runtime"

mapfile -t programs < <(cd "$suite/validation" && ls -- *.t | sed 's/\.t$//' | sort)
if [[ -n ${OCI_VALIDATION_ONLY:-} ]]; then
  for p in $OCI_VALIDATION_ONLY; do [[ -x $suite/validation/$p.t ]] || die "no validation program '$p'"; done
  programs=($OCI_VALIDATION_ONLY)
fi

echo "oci-validation: $runtime ($("$runtime" --version 2>/dev/null | head -1)), runtime-tools ${ref:0:12}, ${#programs[@]} programs, ${per_test}s each"
passed=0 failed=0 skipped=0 prove_passed=0
start=$SECONDS
for p in "${programs[@]}"; do
  tap=$work/out/$p.tap err=$work/out/$p.err
  t0=$SECONDS
  # timeout makes its own process group: what the program leaves running is killed with it
  (cd "$suite" && RUNTIME="$work/runtime" TMPDIR="$work/tmp" \
    exec timeout -k 5 "$per_test" "./validation/$p.t" >"$tap" 2>"$err" </dev/null) &
  pgid=$!
  rc=0
  wait "$pgid" || rc=$?
  kill -KILL -- "-$pgid" 2>/dev/null || true
  cleanup_after_program
  secs=$((SECONDS - t0))

  # TAP: "ok N", "not ok N", "# SKIP" directives; "not ok ... # TODO" does not fail a run.
  n_ok=$(grep -cE '^ok( |$)' "$tap" || true)
  n_skip=$(grep -ciE '^ok .*# ?SKIP' "$tap" || true)
  not_ok=$(grep -E '^not ok( |$)' "$tap" | grep -viE '# ?TODO' || true)
  n_not_ok=$(grep -cE '^not ok( |$)' "$tap" || true)
  plan=$(grep -oE '^1\.\.[0-9]+' "$tap" | head -1 | cut -d. -f3)
  # what `prove` (and the Makefile's tap) would call a pass: exit 0, no `not ok`, a plan
  # that matches, `1..0` included
  if [[ $rc -eq 0 && -z $not_ok && -n $plan ]] && [[ $plan -eq $((n_ok + n_not_ok)) ]]; then
    prove_passed=$((prove_passed + 1))
  fi
  why=
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    why="timed out after ${per_test}s"
  elif [[ -n $not_ok ]]; then
    why="$(grep -cE . <<<"$not_ok") of $((n_ok + n_not_ok)) checks not ok"
  elif [[ $rc -ne 0 ]]; then
    why="exited $rc"
  elif [[ $rc -eq 0 && ! -s $tap ]]; then
    # process_rlimits_fail and process_capabilities_fail print no TAP at all: they exit 0 when
    # the runtime refused the config, and 1 (util.Fatal) when it did not
    why=
  elif [[ -z $plan || $plan -ne $((n_ok + n_not_ok)) ]]; then
    why="no complete TAP plan (plan ${plan:-none}, $((n_ok + n_not_ok)) results)"
  elif [[ $plan -eq 0 ]] && grep -qE '^ +"?error"?:' "$tap"; then
    # prestart_fail, poststart_fail, poststop_fail and hooks print `1..0` and report a
    # violation only as a YAML `error:` diagnostic, never as `not ok`
    why="1..0 with an error diagnostic: $(grep -m1 -E '^ +"?error"?:' "$tap" | sed -E 's/^ +//')"
  fi
  if [[ -n $why ]]; then
    failed=$((failed + 1))
    echo "fail  $p ($why, ${secs}s)"
    [[ -n $not_ok ]] && sed 's/^/        /' <<<"$not_ok" | head -20
    if [[ -z $not_ok && -s $err ]]; then tail -5 "$err" | sed 's/^/        stderr: /'; fi
  elif [[ -z $plan ]]; then
    passed=$((passed + 1))
    echo "pass  $p (exit 0 and no TAP: the runtime refused the config, as it must; ${secs}s)"
  elif [[ $plan -eq 0 ]]; then
    passed=$((passed + 1))
    echo "pass  $p (1..0: no checks and no error diagnostic, ${secs}s)"
  elif [[ $n_skip -eq $n_ok ]]; then
    skipped=$((skipped + 1))
    echo "skip  $p ($(grep -m1 -oiE '# ?SKIP.*' "$tap"), ${secs}s)"
  else
    passed=$((passed + 1))
    echo "pass  $p ($n_ok checks, $n_skip skipped, ${secs}s)"
  fi
  if [[ -n ${OCI_VALIDATION_KEEP_TAP:-} ]]; then
    mkdir -p "$OCI_VALIDATION_KEEP_TAP"
    cp "$tap" "$err" "$OCI_VALIDATION_KEEP_TAP/"
  fi
done

cleanup_all
trap - EXIT
leaks=()
while read -r m; do
  [[ $m == "$work"* || $m == */ocitest* ]] && leaks+=("mount $m")
done < <(comm -13 <(echo "$mounts_before") <(awk '{print $5}' /proc/self/mountinfo | sort -u))
[[ -n $(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'ocitest*' -newer "$suite/runtimetest" 2>/dev/null) ]] &&
  leaks+=("bundles ${TMPDIR:-/tmp}/ocitest*")
for root in "${cg_roots[@]}"; do
  for d in "$cg_base" "${cg_suite[@]}"; do [[ -e $root/$d ]] && leaks+=("cgroup $root/$d"); done
done
[[ -e $work ]] && leaks+=("$work")
for l in "${leaks[@]}"; do echo "oci-validation: left behind: $l" >&2; done

echo "$skipped skipped entirely, $failed failed, in $((SECONDS - start))s"
echo "as prove counts (exit 0 and no \`not ok\`; 1..0 is a pass): $prove_passed of ${#programs[@]}"
echo "$passed of ${#programs[@]} passed"
[[ ${#leaks[@]} -eq 0 ]]
