#!/usr/bin/env bash
# Installs everything capsule needs on a fresh Debian machine with Node 20, as root:
# the Debian packages the addon and the tests use, the npm packages, and the build.
# Idempotent: a second run only rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

# build-essential and python3: node-gyp; busybox-static: the demo's and the tests' rootfs;
# libseccomp-dev: the seccomp filter compiler; runc: test/security/seccomp.test.ts compares
# capsule's reading of Docker's seccomp profile with runc's (also a peer for `npm run bench`);
# golang-go, default-jdk-headless, rustc, node-typescript: the same test compiles and runs Go,
# Java, Rust and TypeScript under the default and compile profiles, test/security/strict.test.ts
# runs Go and Java under strict, and the example judge (examples/judge/, npm run example:judge)
# compiles and judges C, C++, Python 3, Java, Go and JavaScript submissions.
# strace: `capsule rootfs check --run` traces the program with it (test/rootfs-tools/packages.test.ts).
# tmux: test/cli/tty.test.ts types into `capsule run -it` as a person would and reads the screen.
# bubblewrap: a peer for `npm run bench` (installed by the bench itself when missing, not here).
# podman, containerd, containernetworking-plugins: test/oci runs them as real clients of
# capsule-runc (each test starts its own under a temp dir and stops it); the CRI test's pod
# network uses the plugins' loopback. uidmap: newuidmap/newgidmap, for rootless sandboxes with
# a subordinate id range (test/rootless.test.ts).
packages=(build-essential python3 busybox-static libseccomp-dev runc golang-go default-jdk-headless rustc strace
  node-typescript tmux passwd util-linux podman containerd containernetworking-plugins uidmap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: capsule needs Node 20 or later, found $(node --version)" >&2
  exit 1
fi

# Exactly the committed lock: npm ci refuses a lock that does not match package.json.
npm ci --no-audit --no-fund --loglevel=error
# npm ci has built the addon already (node-gyp rebuild is the install script of a package with a
# binding.gyp); what is left is the TypeScript and the bundled CLI.
npm run --silent build:ts
