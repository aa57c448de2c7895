/**
 * A private podman: its storage, run dir, libpod tmp dir, network config and registries
 * config all under one temp dir, so that it shares nothing with the machine's podman and
 * never reaches the network. podman has no daemon: each command is a process, and a
 * running container is its conmon plus the runtime's container.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { sh, shStatus } from './helpers.js';

export class Podman {
  readonly env: NodeJS.ProcessEnv;
  readonly global: string[];

  /**
   * @param dir the temp dir that holds everything of this podman's
   * @param runtime the OCI runtime binary (`--runtime`)
   * @param cgroupParent the cgroup every container (and its conmon) goes under, given
   *   explicitly so that none is made under this machine's own cgroups
   */
  constructor(
    readonly dir: string,
    readonly runtime: string,
    readonly cgroupParent: string,
  ) {
    const storage = join(dir, 'storage.conf');
    /* vfs: plain copies, no overlay mounts that could outlive a test. */
    writeFileSync(
      storage,
      `[storage]\ndriver = "vfs"\ngraphroot = "${dir}/root"\nrunroot = "${dir}/runroot"\n`,
    );
    /* No registries: an image name that is not local fails instead of being looked up. */
    const registries = join(dir, 'registries.conf');
    writeFileSync(registries, 'unqualified-search-registries = []\n');
    const containers = join(dir, 'containers.conf');
    writeFileSync(containers, '[engine]\nimage_default_transport = "containers-storage:"\n');
    this.env = {
      ...process.env,
      CONTAINERS_STORAGE_CONF: storage,
      CONTAINERS_REGISTRIES_CONF: registries,
      CONTAINERS_CONF: containers,
    };
    this.global = [
      '--root',
      join(dir, 'root'),
      '--runroot',
      join(dir, 'runroot'),
      '--tmpdir',
      join(dir, 'libpod'),
      '--network-config-dir',
      join(dir, 'networks'),
      '--storage-driver',
      'vfs',
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'file',
      '--runtime',
      runtime,
    ];
  }

  /**
   * The options of every `podman run`/`create` here: the limits this machine needs, the
   * explicit cgroup parent, and no network (`--network none`: podman's default bridge would
   * add interfaces and firewall rules to the host's namespace).
   */
  get runOptions(): string[] {
    return [
      '--ulimit',
      'nofile=20000:20000',
      '--ulimit',
      'nproc=32768:32768',
      '--cgroup-parent',
      this.cgroupParent,
      '--network',
      'none',
    ];
  }

  /** `podman ARGS`, throwing with podman's stderr when it fails. */
  run(args: string[]): string {
    return sh('podman', [...this.global, ...args], { env: this.env });
  }

  /** `podman ARGS` with its exit status. */
  status(args: string[]): { status: number | null; stdout: string; stderr: string } {
    return shStatus('podman', [...this.global, ...args], this.env);
  }

  /** The command line of `podman ARGS` as one shell word list (for a terminal). */
  commandLine(args: string[]): string {
    const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
    const env = ['CONTAINERS_STORAGE_CONF', 'CONTAINERS_REGISTRIES_CONF', 'CONTAINERS_CONF']
      .map((k) => `${k}=${quote(this.env[k] as string)}`)
      .join(' ');
    return `env ${env} podman ${[...this.global, ...args].map(quote).join(' ')}`;
  }
}
