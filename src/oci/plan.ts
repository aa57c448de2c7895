/**
 * What `create` needs to make a container, read from an OCI bundle: the one product of
 * src/oci/spec.ts (config.json, validated) and the one input of src/oci/container.ts (the
 * create/start/kill/delete/exec lifecycle). Everything here is plain data: no descriptor is
 * open yet, no file is written; create opens what the addon needs (namespaces to join, the
 * cgroup, the compiled seccomp filter, stdio) at the moment it launches.
 */
import type { NativeOci, NativeOptions } from '../native.js';
import type { SeccompProfile } from '../seccomp/profile.js';

/** A hook of config.json's `hooks` (runtime-spec config.md, "POSIX-platform Hooks"). */
export interface OciHook {
  path: string;
  args: string[];
  env: string[];
  /** Seconds; absent: no limit. */
  timeout?: number;
}

export interface OciHooks {
  prestart: OciHook[];
  createRuntime: OciHook[];
  createContainer: OciHook[];
  startContainer: OciHook[];
  poststart: OciHook[];
  poststop: OciHook[];
}

/** linux.resources, validated and in capsule's units; absent fields: no limit set. */
export interface OciResources {
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    period?: number;
    cpus?: string;
    mems?: string;
    realtimeRuntime?: number;
    realtimePeriod?: number;
  };
  pids?: { limit: number };
  /** The device cgroup's rules, in order (the last match wins, as the kernel's v1 list and runc's v2 program do). */
  devices: {
    allow: boolean;
    type: 'a' | 'c' | 'b';
    major: number | null;
    minor: number | null;
    access: string;
  }[];
  blockIO?: unknown;
  hugepageLimits?: { pageSize: string; limit: number }[];
  network?: unknown;
  unified?: Record<string, string>;
}

export interface ContainerPlan {
  ociVersion: string;
  /** The bundle directory, absolute. */
  bundle: string;
  /**
   * The addon's options, complete except for what create opens at launch: stdio (the caller's
   * 0, 1, 2), cgroupFds/cgroupDirFd (the container's cgroup), seccompFd (from `seccomp`),
   * and the descriptors of namespaces to join (oci.namespaces[i].fd is -1 here; see
   * joinNamespaces). native.rootfs is root.path resolved against the bundle.
   */
  native: Omit<NativeOptions, 'stdio' | 'cgroupFds' | 'cgroupDirFd' | 'seccompFd'> & { oci: NativeOci };
  /** Namespaces to join: `index` into native.oci.namespaces, whose fd create fills from `path`. */
  joinNamespaces: { index: number; type: NativeOci['namespaces'][number]['type']; path: string }[];
  /** linux.cgroupsPath ('' when absent: create picks /capsule-oci/<id>), and the limits to write there. */
  cgroupsPath: string;
  resources: OciResources;
  /** linux.seccomp, normalized; null: no filter. */
  seccomp: SeccompProfile | null;
  /** config.json has a `process`: without one the container is created but `start` refuses it. */
  hasProcess: boolean;
  /** process.terminal; its first size from process.consoleSize. */
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  /** process.oomScoreAdj, written to /proc/PID/oom_score_adj by create. */
  oomScoreAdj?: number;
  hooks: OciHooks;
  annotations: Record<string, string>;
  /**
   * What config.json asked for that is left out, for the command line's log (runc warns so too):
   * capabilities this kernel does not have, ambient capabilities the kernel would refuse.
   */
  warnings: string[];
}
