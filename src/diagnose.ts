/**
 * Turning a failed step into a message a person can act on. For exec, the
 * kernel's ENOENT is famously vague (the program, or its interpreter, or the
 * interpreter's interpreter?), so we look inside the rootfs the way the
 * kernel did and say which file is missing. Nothing is executed to find out.
 */
import { lstat, readlink, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';

import { isElf, readElfInterpreter, readShebang } from '../rootfs-tools/elf.js';
import { SetupError } from './errors.js';
import { native, type NativeStepError } from './native.js';
import { ID_MAP_TOOL_HINT } from './rootless.js';
import type { Step } from './steps.js';

/**
 * Resolve `inside` (absolute, in the sandbox) to a host path under `rootfs`,
 * following symlinks as the sandbox would see them: absolute targets are
 * relative to the rootfs, and `..` never leaves it. Returns null if missing.
 */
export async function resolveInRoot(rootfs: string, inside: string): Promise<string | null> {
  let parts = inside.split('/').filter(Boolean);
  const done: string[] = [];
  for (let hops = 0; parts.length > 0;) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = rootfs + '/' + [...done, part].join('/');
    let st;
    try {
      st = await lstat(host);
    } catch {
      return null;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++hops > 40) return null; /* ELOOP, as path_resolution(7) */
    const target = await readlink(host);
    if (target.startsWith('/')) done.length = 0;
    parts = [...target.split('/').filter(Boolean), ...parts];
  }
  return rootfs + '/' + done.join('/');
}

/** Why exec said ENOENT, in words: which file of the chain is missing from the rootfs. */
async function whyMissing(rootfs: string, program: string): Promise<string | undefined> {
  const host = await resolveInRoot(rootfs, program);
  if (!host) {
    const link = await lstat(rootfs + program).catch(() => null);
    if (link?.isSymbolicLink()) {
      return `it is a symlink to ${await readlink(rootfs + program)}, which is missing from the rootfs`;
    }
    return 'it is not in the rootfs: copy it in, or build the rootfs with `capsule rootfs build --bin`';
  }
  const st = await stat(host).catch(() => null);
  if (!st?.isFile()) return undefined;
  if (await isElf(host)) {
    const interp = await readElfInterpreter(host).catch(() => null);
    if (interp && !(await resolveInRoot(rootfs, interp))) {
      return `its interpreter ${interp} is missing from the rootfs: \`capsule rootfs build --bin ${program}\` copies it`;
    }
    return undefined;
  }
  const shebang = await readShebang(host).catch(() => null);
  if (shebang && !(await resolveInRoot(rootfs, shebang))) {
    return `its #! interpreter ${shebang} is missing from the rootfs`;
  }
  return undefined;
}

/** What a hint caused by a missing kernel feature ends with. */
export const DOCTOR_HINT = 'run `capsule doctor` to see what this machine lacks';

/**
 * Known failures and what to do about them, by step and errno code. Those a missing kernel
 * feature causes (a system call, a namespace, a seccomp mode) point at `capsule doctor`.
 */
export function hintFor(step: string, code: string): string | undefined {
  const hint = knownHint(step, code);
  if (!missingFeature(step, code)) return hint;
  return hint
    ? `${hint}; ${DOCTOR_HINT}`
    : `the kernel lacks this system call, or a seccomp filter around capsule refuses it: ${DOCTOR_HINT}`;
}

/** ENOSYS anywhere; clone's EINVAL, EPERM and ENOSPC; a user namespace that cannot be made; seccomp refused. */
function missingFeature(step: string, code: string): boolean {
  if (code === 'ENOSYS') return true;
  if (step === 'clone') return code === 'EINVAL' || code === 'EPERM' || code === 'ENOSPC';
  if (step === 'make_userns' || step === 'set_userns' || step === 'map_user_ids') return true;
  if (step === 'load_seccomp') return code === 'EINVAL';
  if (step === 'unshare_cgroupns') return code === 'EINVAL';
  return false;
}

function knownHint(step: string, code: string): string | undefined {
  if (step === 'clone' && code === 'EPERM')
    return 'the kernel refused the namespaces: without root, capsule needs unprivileged user namespaces (kernel.unprivileged_userns_clone, AppArmor’s kernel.apparmor_restrict_unprivileged_userns), and with root, a seccomp profile or LSM around capsule may refuse them';
  if (step === 'clone' && code === 'ENOSPC')
    return 'a namespace limit was reached: see /proc/sys/user/max_*_namespaces (user.max_user_namespaces = 0 turns off the user namespaces a run without root needs)';
  if (step === 'map_user_ids')
    return 'the user namespace gives no right to map ids here: AppArmor’s kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10 and later) does this to programs without a profile that allows userns';
  if (step === 'clone' && code === 'EINVAL')
    return 'this kernel lacks one of the namespaces (CONFIG_PID_NS, CONFIG_NET_NS, ...)';
  if (step === 'open_mount_target' && code === 'ELOOP')
    return 'a component of this mount point is a symlink, perhaps swapped in after capsule checked it: mount points must be real directories and files inside the rootfs, reached with no symlink on the way';
  if (step === 'open_mount_target' && code === 'ENOENT')
    return 'this mount point lies under /proc, /dev or /tmp, which capsule mounts over (mount elsewhere), or it was removed from the rootfs after capsule checked it';
  if (step === 'make_mount_point' && (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT'))
    return 'a directory on the way to this mount point was replaced (by a symlink or a file) after capsule checked it: mount points are made only in real directories inside the rootfs, reached with no symlink on the way';
  if (step === 'mount_overlay' && code === 'EINVAL')
    return "overlayfs refused the rootfs as its lower layer (the kernel's reason is above): a rootfs on an overlayfs that is itself stacked on another overlay is too deep (the kernel stacks at most two), and a rootfs on a filesystem overlayfs cannot use (a FUSE or network mount without the features it needs) is refused: copy the rootfs to a plain directory (ext4, xfs, btrfs or tmpfs), or create every mount point in it and leave overlay off";
  if (step === 'mount_overlay' && code === 'ENODEV')
    return 'this kernel has no overlayfs (CONFIG_OVERLAY_FS; modprobe overlay): create every mount point in the rootfs and leave overlay off';
  if (step === 'make_userns' || step === 'set_userns') {
    const off =
      "or hostIds: 'shared' (--host-ids shared) runs every sandbox as its uid on the host, without a user namespace";
    if (code === 'ENOSPC')
      return `user namespaces are off or used up: raise the sysctl user.max_user_namespaces (0 turns them off), ${off}`;
    if (code === 'EINVAL' && step === 'make_userns')
      return `this kernel has no user namespaces (CONFIG_USER_NS), or a hostIdRange id is not valid: ${off}`;
    if (code === 'EPERM' || code === 'EACCES')
      return `something around capsule refuses user namespaces (a seccomp profile or LSM of a container capsule runs in, or a chroot): allow them, ${off}`;
    return `the sandbox's user namespace could not be made: ${off}`;
  }
  if (code === 'ENOSYS' && step.startsWith('remount_')) return 'mount_setattr(2) needs Linux 5.12 or later';
  if (code === 'ENOSYS' && (step === 'open_mount_target' || step === 'bind_rootfs'))
    return 'openat2(2), open_tree(2) and move_mount(2) need Linux 5.6 or later';
  if (code === 'ENOSYS' && step === 'close_fds') return 'close_range(2) needs Linux 5.9 or later';
  if (step === 'pivot_root' && code === 'EINVAL') {
    return 'pivot_root refuses a rootfs on the initial ramfs; put the rootfs on a real filesystem or tmpfs';
  }
  if (step === 'make_device_node' && code === 'EPERM')
    return "a device cgroup above the sandbox (a systemd unit's DevicePolicy/DeviceAllow, a container's device list) does not allow this device: allow it there, or run capsule outside that cgroup";
  if (step === 'join_cgroup')
    return 'the sandbox could not enter its cgroup: check the cgroup is writable (`capsule gc` clears leftovers)';
  if (step === 'load_seccomp' && code === 'EBUSY')
    return "a seccomp filter with a notification listener is already installed above capsule (a supervisor's seccomp agent, or capsule run inside another sandbox), and the kernel allows one listener per process tree (seccomp(2), SECCOMP_FILTER_FLAG_NEW_LISTENER): run capsule outside it, or use seccomp: 'none' (--seccomp none)";
  if (step === 'load_seccomp' && (code === 'EINVAL' || code === 'ENOSYS'))
    return "the kernel refused the seccomp filter (a kernel without CONFIG_SECCOMP_FILTER?): seccomp: 'none' (--seccomp none) runs without one";
  if (step === 'mount_sys' && code === 'EPERM')
    return 'sysfs could not be mounted in the sandbox (a container without CAP_SYS_ADMIN over its network namespace?): leave sys off';
  if (step === 'exec' && code === 'EACCES')
    return 'it is not executable (chmod +x), or it sits on a noexec mount';
  if (step === 'exec' && code === 'ENOEXEC')
    return 'it is not a program this machine runs: another architecture, or a script without #!';
  return undefined;
}

/** Build the SetupError for a step record from the addon. */
export async function setupError(
  rec: NativeStepError,
  ctx: { rootfs: string; rootfsArg: string; program: string },
): Promise<SetupError> {
  const addon = native();
  const text = addon.strerror(rec.errno);
  const code = errnoName(rec.errno);
  const step = rec.step as Step;
  let hint = hintFor(step, code);
  let message: string;
  if (step === 'exec' || step === 'exec_init') {
    if (step === 'exec' && code === 'ENOENT') hint = (await whyMissing(ctx.rootfs, ctx.program)) ?? hint;
    const what = step === 'exec' ? ctx.program : 'capsule-init';
    message = `cannot execute ${what} in ${ctx.rootfsArg}: ${text}${hint ? ` (${hint})` : ''}`;
  } else if (step === 'run_create_container_hook') {
    /* OCI: errno 0 is the hook's own failure, its exit status in the detail (native/oci.cc). */
    message =
      rec.errno === 0
        ? rec.detail
        : rec.errno === osConstants.errno.ETIMEDOUT
          ? `${rec.detail} timed out (its timeout in config.json) and was killed`
          : `${rec.detail} cannot be run: ${text}`;
  } else if (step === 'map_user_ids' && /new[ug]idmap /.test(rec.detail)) {
    /* Rootless with a range: the tool's own words are the detail (src/rootless.ts). */
    hint = ID_MAP_TOOL_HINT;
    message = `${step} failed: ${rec.detail}: ${text} (${hint})`;
  } else {
    message = `${step} failed: ${rec.syscall}(${rec.detail}): ${text}${hint ? ` (${hint})` : ''}`;
  }
  return new SetupError(message, {
    step,
    syscall: rec.syscall,
    errno: rec.errno,
    code,
    path: rec.detail,
    hint,
  });
}

let errnoNames: Map<number, string> | undefined;

/** Names os.constants.errno also lists for a number that has a better-known one. */
const ERRNO_ALIASES = new Set(['EWOULDBLOCK', 'ENOTSUP', 'EDEADLOCK']);

/** errno's symbolic name (`ENOENT`) from os.constants.errno: EAGAIN, never its alias EWOULDBLOCK. */
export function errnoName(errno: number): string {
  if (!errnoNames) {
    errnoNames = new Map(
      Object.entries(osConstants.errno)
        .filter(([name]) => !ERRNO_ALIASES.has(name))
        .map(([name, value]) => [value as number, name]),
    );
  }
  return errnoNames.get(errno) ?? `E${errno}`;
}
