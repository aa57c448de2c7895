/**
 * A private containerd: config, root, state, sockets, the CRI plugin's netns mounts and
 * CNI config all under one temp dir, started and stopped by the test. Its CRI plugin has a
 * runtime handler `capsule` (the runc shim, `io.containerd.runc.v2`, with `BinaryName` set
 * to the runtime under test) and pods get a network namespace from a CNI plugin of the
 * test's own (below) that touches nothing on the host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

import { exited, sh, shStatus, waitFor } from './helpers.js';

/** The CRI plugin's runtime handler that runs the runtime under test (RuntimeClass `handler`). */
export const HANDLER = 'capsule';

/** Debian's CNI plugins (containernetworking-plugins, a dependency of podman). */
const CNI_PLUGINS = '/usr/lib/cni';

/**
 * The containerd config (version 2, containerd 1.6). The runtime entry is the one
 * docs/kubernetes.md shows.
 */
export function containerdConfig(dir: string, runtime: string, sandboxImage: string): string {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"

[grpc]
  address = "${dir}/containerd.sock"

[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"

[${cri}]
  sandbox_image = "${sandboxImage}"
  # The pods' network namespaces are bind-mounted under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This machine does not let a process lower its oom_score_adj (runc's nsexec gets EACCES
  # writing the pause container's -998); keep every container's at or above containerd's.
  restrict_oom_score_adj = true

[${cri}.cni]
  bin_dir = "${dir}/cni-bin"
  conf_dir = "${dir}/cni-conf"

[${cri}.containerd]
  snapshotter = "native"
  # Only the runtime under test here; on a node the default stays runc and pods choose
  # capsule with a RuntimeClass.
  default_runtime_name = "${HANDLER}"

[${cri}.containerd.runtimes.${HANDLER}]
  runtime_type = "io.containerd.runc.v2"

[${cri}.containerd.runtimes.${HANDLER}.options]
  BinaryName = "${runtime}"
`;
}

/*
 * containerd's CRI plugin wants each pod to get an address from CNI. The test's plugin makes
 * the interface one end of a veth pair whose both ends stay inside the pod's network
 * namespace (ip-link(8) `type veth`; this kernel has no `dummy`), so that nothing is added
 * to the host's namespace (no bridge, no host-side veth, no firewall rule) and the pair
 * goes with the namespace. Loopback is Debian's plugin.
 */
const POD_ADDRESS = '10.88.77.2/24';
const CNI_PLUGIN = `#!/bin/sh
# A CNI plugin (CNI spec 1.0.0) for the tests: eth0 is a veth whose peer is in the pod's netns too.
set -e
case "$CNI_COMMAND" in
VERSION)
  echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}' ;;
ADD)
  cat > /dev/null
  /usr/bin/nsenter --net="$CNI_NETNS" /usr/sbin/ip link add "$CNI_IFNAME" type veth peer name "$CNI_IFNAME-peer"
  /usr/bin/nsenter --net="$CNI_NETNS" /usr/sbin/ip addr add ${POD_ADDRESS} dev "$CNI_IFNAME"
  /usr/bin/nsenter --net="$CNI_NETNS" /usr/sbin/ip link set "$CNI_IFNAME" up
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"address":"${POD_ADDRESS}","interface":0}]}\\n' "$CNI_IFNAME" "$CNI_NETNS" ;;
DEL|CHECK|GC|STATUS)
  cat > /dev/null ;;
*)
  echo "{\\"code\\":4,\\"msg\\":\\"unknown CNI_COMMAND $CNI_COMMAND\\"}"; exit 1 ;;
esac
`;

export class Containerd {
  readonly socket: string;
  private child?: ChildProcess;
  private log = '';

  constructor(
    readonly dir: string,
    readonly runtime: string,
    readonly sandboxImage: string,
  ) {
    this.socket = join(dir, 'containerd.sock');
  }

  /** Writes the config and the CNI files, starts containerd and waits for its socket. */
  async start(): Promise<void> {
    if (!existsSync('/usr/bin/containerd'))
      throw new Error('containerd is missing: apt-get install containerd');
    if (!existsSync(join(CNI_PLUGINS, 'loopback')))
      throw new Error(`${CNI_PLUGINS}/loopback is missing: apt-get install containernetworking-plugins`);
    const bin = join(this.dir, 'cni-bin');
    const conf = join(this.dir, 'cni-conf');
    mkdirSync(bin);
    mkdirSync(conf);
    symlinkSync(join(CNI_PLUGINS, 'loopback'), join(bin, 'loopback'));
    writeFileSync(join(bin, 'capsule-test-veth'), CNI_PLUGIN);
    chmodSync(join(bin, 'capsule-test-veth'), 0o755);
    writeFileSync(
      join(conf, '10-capsule-test.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'capsule-test', plugins: [{ type: 'capsule-test-veth' }] }),
    );
    const config = join(this.dir, 'config.toml');
    writeFileSync(config, containerdConfig(this.dir, this.runtime, this.sandboxImage));
    const child = spawn('/usr/bin/containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    await waitFor('containerd to serve its socket', 20_000, () => {
      if (child.exitCode !== null)
        throw new Error(`containerd exited ${child.exitCode}: ${this.log.slice(-2000)}`);
      return shStatus('ctr', ['--address', this.socket, 'version']).status === 0 ? true : undefined;
    });
  }

  /** `ctr --address SOCK --namespace NS ARGS` (images unpacked with the native snapshotter). */
  ctr(namespace: string, args: string[]): string {
    return sh('ctr', ['--address', this.socket, '--namespace', namespace, ...args], { env: this.env() });
  }

  ctrStatus(namespace: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
    return shStatus('ctr', ['--address', this.socket, '--namespace', namespace, ...args], this.env());
  }

  /** `ctr ARGS` as a child process (for a foreground `ctr run`). */
  ctrSpawn(namespace: string, args: string[]): ChildProcess {
    return spawn('ctr', ['--address', this.socket, '--namespace', namespace, ...args], {
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, CONTAINERD_SNAPSHOTTER: 'native' };
  }

  /** containerd's own output so far (for a failure's message). */
  output(): string {
    return this.log;
  }

  /** Stops containerd (SIGTERM) and waits for it; SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited(child);
    clearTimeout(timer);
  }

  /** The runc shims this containerd started (their command line names its socket). */
  shims(): number[] {
    return listPids().filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(this.socket);
      } catch {
        return false;
      }
    });
  }
}

function listPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}
