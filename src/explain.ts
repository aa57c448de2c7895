/**
 * --explain: the teardown, live. Every step capsule takes for one run, in order,
 * with the system call and its arguments as they matter, why it is there, how
 * long it took, and its man page; the same step names as in errors and the code
 * (native/steps.h). The child's times come from a buffer it fills only when
 * asked (native/config.h, capsule_trace), capsule-init's from its report, the
 * parent's cgroup writes from the cgroup layer's write trace.
 *
 * `capsule explain` prints the same list without running anything (no times).
 */
import type { NativeExit, NativeOp, NativeOptions, NativeTrace } from './native.js';
import type { ResolvedOptions } from './options.js';
import { rootlessIdPlan } from './rootless.js';
import { filterNote, filterOrigin } from './seccomp/cache.js';
import { type Step, STEPS } from './steps.js';

export interface ExplainStep {
  step: Step;
  /** Which side made the call: capsule's process, the child before exec, or capsule-init. */
  side: 'parent' | 'child' | 'init';
  /** The call as it was made, e.g. `mount("proc", "/rootfs/proc", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC)`. */
  call: string;
  why: string;
  man: string;
  /** Milliseconds from just before clone; null when nothing ran (`capsule explain`). */
  atMs: number | null;
  /** How long the step took, in ms; null when unknown or nothing ran. */
  durationMs: number | null;
}

const info = new Map<string, (typeof STEPS)[number]>(STEPS.map((s) => [s.name, s]));

function entry(
  step: string,
  side: ExplainStep['side'],
  call: string,
  atMs: number | null,
  durationMs: number | null,
) {
  const s = info.get(step);
  return {
    step: step as Step,
    side,
    call,
    why: s?.why ?? '',
    man: s?.man ?? '',
    atMs,
    durationMs,
  } satisfies ExplainStep;
}

const MS_FLAGS: [number, string][] = [
  [1, 'MS_RDONLY'],
  [2, 'MS_NOSUID'],
  [4, 'MS_NODEV'],
  [8, 'MS_NOEXEC'],
  [32, 'MS_REMOUNT'],
  [4096, 'MS_BIND'],
  [16384, 'MS_REC'],
  [1 << 18, 'MS_PRIVATE'],
  [1 << 19, 'MS_SLAVE'],
];
const ATTR_FLAGS: [number, string][] = [
  [1, 'MOUNT_ATTR_RDONLY'],
  [2, 'MOUNT_ATTR_NOSUID'],
  [4, 'MOUNT_ATTR_NODEV'],
  [8, 'MOUNT_ATTR_NOEXEC'],
];

function flagNames(value: number, table: [number, string][]): string {
  const names = table.filter(([bit]) => (value & bit) !== 0).map(([, name]) => name);
  return names.length > 0 ? names.join('|') : '0';
}

const q = (s: string | null) => (s === null ? 'NULL' : JSON.stringify(s));

/** One mount-phase operation as the call it makes. */
export function renderOp(op: NativeOp): string {
  switch (op.kind) {
    case 'mount':
      return `mount(${q(op.source)}, ${q(op.target)}, ${q(op.fstype)}, ${flagNames(op.flags, MS_FLAGS)}${op.data ? `, ${q(op.data)}` : ''})`;
    case 'setattr':
      return `mount_setattr(${q(op.target)}, ${op.recursive ? 'AT_RECURSIVE' : '0'}, ${flagNames(op.attrSet, ATTR_FLAGS)})`;
    case 'mknod':
      return `mknodat(${q(op.target)}, S_IFCHR|0${(op.flags & 0o777).toString(8)}, ${op.attrSet >> 8}:${op.attrSet & 0xff})`;
    case 'mkfile':
      return `openat(${q(op.target)}, O_CREAT|O_EXCL)`;
    case 'mkdir':
      return `mkdirat(${q(op.target)}, 0755)`;
    case 'symlink':
      return `symlinkat(${q(op.source)}, ${q(op.target)})`;
    case 'umask':
      return `umask(0${op.flags.toString(8)})`;
    case 'bind': {
      /* flags: BIND_FROM_PARENT (1), the parent cloned the source before clone (native/config.h). */
      const from = op.source === null ? op.target : op.source;
      const clone = `open_tree(${q(from)}, OPEN_TREE_CLONE${op.recursive ? '|AT_RECURSIVE' : ''})`;
      const attrs = op.attrSet ? `; mount_setattr(tree, ${flagNames(op.attrSet, ATTR_FLAGS)})` : '';
      return `${(op.flags & 1) !== 0 ? `before clone: ${clone}${attrs}, MS_PRIVATE; then ` : `${clone}${attrs}; `}move_mount(tree, ${q(op.target)})`;
    }
    case 'overlay':
      return (
        `fsopen("tmpfs"); fsconfig(${q(op.data)}); fsmount(); mkdirat(upper, work); fsopen("overlay"); ` +
        `fsconfig(lowerdir+ = bind_rootfs's mount by descriptor, upperdir, workdir); ` +
        `fsmount(${flagNames(op.attrSet, ATTR_FLAGS)}); move_mount(mnt, ${q(op.target)})`
      );
    case 'mkpoint':
      /* flags: MKPOINT_DIR (1) makes a directory, else an empty file (native/config.h). */
      return (op.flags & 1) !== 0
        ? `mkdirat(${q(op.target)}, 0755)`
        : `openat(${q(op.target)}, O_CREAT|O_EXCL|O_NOFOLLOW, 0644)`;
    case 'fsmount':
      return `fsopen(${q(op.fstype)})${op.data ? `; fsconfig(${q(op.data)})` : ''}; fsmount(${flagNames(op.attrSet, ATTR_FLAGS)}); move_mount(mnt, ${q(op.target)})`;
  }
}

/** The call each non-mount step makes, from the options. */
function renderStep(step: string, o: ResolvedOptions, n: NativeOptions): string {
  const rlimitNames: Record<number, string> = { 0: 'CPU', 1: 'FSIZE', 3: 'STACK', 4: 'CORE', 7: 'NOFILE' };
  switch (step) {
    case 'clone':
      /* Rootless: clone makes the user namespace too, first (src/rootless.ts). */
      return (n.cgroupDirFd ?? -1) >= 0
        ? `clone3(${n.rootless ? 'CLONE_NEWUSER|' : ''}CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_VM|CLONE_VFORK|CLONE_PIDFD|CLONE_INTO_CGROUP, SIGCHLD)`
        : `clone(${n.rootless ? 'CLONE_NEWUSER|' : ''}CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_VM|CLONE_VFORK|CLONE_PIDFD, SIGCHLD)`;
    case 'make_userns': {
      const uid = n.hostUid ?? 'ID';
      const gid = n.hostGid ?? 'ID';
      const leased =
        n.hostUid === undefined
          ? ` (ID leased from ${o.hostIdRange.first}-${o.hostIdRange.first + o.hostIdRange.count - 1})`
          : '';
      return `a helper: setresuid(-1, ${uid}, -1); unshare(CLONE_NEWUSER); uid_map "${o.uid} ${uid} 1", gid_map "${o.gid} ${gid} 1"${leased}`;
    }
    case 'map_user_ids': {
      /* Which map, and why (src/rootless.ts): a subordinate range through newuidmap, or one id each. */
      const { why } = rootlessIdPlan(o);
      if (n.idMap) {
        const line = (rs: { inside: number; outside: number; count: number }[]) =>
          rs.map((r) => `${r.inside} ${r.outside} ${r.count}`).join(' ');
        return `write(helper socket), read(helper socket): the parent's helper thread runs ${n.idMap.newuidmap} PID ${line(n.idMap.uids)}; ${n.idMap.newgidmap} PID ${line(n.idMap.gids)} (${why})`;
      }
      const uid = process.geteuid?.() ?? 0;
      const gid = process.getegid?.() ?? 0;
      return `write("/proc/self/setgroups", "deny"); gid_map "${o.gid} ${gid} 1"; uid_map "${o.uid} ${uid} 1" (${why})`;
    }
    case 'set_userns':
      return "setns(the sandbox's user namespace, CLONE_NEWUSER)";
    case 'set_netns':
      return 'setns(a fresh network namespace made ahead of time, CLONE_NEWNET)';
    case 'join_box':
      return "setns(the box's PID 1 pidfd, CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWPID)";
    case 'set_loopback_up':
      return 'ioctl(socket(AF_INET, SOCK_DGRAM), SIOCSIFFLAGS, "lo" IFF_UP)';
    case 'set_pdeathsig':
      return 'prctl(PR_SET_PDEATHSIG, SIGKILL)';
    case 'check_parent':
      return "poll(capsule's pidfd, POLLIN, 0)";
    case 'reset_signals':
      return 'rt_sigaction(1..64, SIG_DFL)';
    case 'join_cgroup':
      return n.cgroupFds.length > 0 ? 'write(cgroup.procs, "0") in each hierarchy' : '(no cgroup)';
    case 'unshare_cgroupns':
      return 'unshare(CLONE_NEWCGROUP)';
    case 'pivot_root':
      return `fchdir(${q(o.rootfs)}); pivot_root(".", ".")`;
    case 'detach_old_root':
      return 'umount2(".", MNT_DETACH)';
    case 'change_dir':
      return `chdir(${q(o.cwd)})`;
    case 'set_hostname':
      return `sethostname(${q(o.hostname)})`;
    case 'new_session':
      return 'setsid()';
    case 'open_pty': {
      const size =
        o.terminal && (o.terminal.rows || o.terminal.cols)
          ? `; TIOCSWINSZ ${o.terminal.rows}x${o.terminal.cols}`
          : '';
      return `openat2(devpts, "ptmx", RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV); ioctl(TIOCSPTLCK, 0); ioctl(TIOCGPTPEER); fchown(slave, ${n.hostUid ?? (o.hostIds === 'unique' ? 'ID' : o.uid)}, ${n.hostGid ?? (o.hostIds === 'unique' ? 'ID' : o.gid)})${size}`;
    }
    case 'send_pty_master':
      return 'sendmsg(socketpair, SCM_RIGHTS master); close(master)';
    case 'set_controlling_tty':
      return 'setsid(); ioctl(0, TIOCSCTTY, 0)';
    case 'set_rlimits':
      return n.rlimits
        .map((r) => `RLIMIT_${rlimitNames[r.resource] ?? r.resource}=${r.soft}/${r.hard}`)
        .join(' ');
    case 'arrange_fds':
      return `dup3: 0-2 ${o.terminal ? 'the pty slave' : 'stdio'}, 3 error pipe, 4 status pipe${n.seccompFd >= 0 ? ', 5 seccomp filter' : ''}, 6 capsule-init, 7 capsule's pidfd`;
    case 'close_fds':
      return 'close_range(8, ~0U, 0)';
    case 'set_securebits':
      return 'prctl(PR_SET_SECUREBITS, NOROOT|NOROOT_LOCKED|NO_SETUID_FIXUP_LOCKED|KEEP_CAPS_LOCKED|NO_CAP_AMBIENT_RAISE|NO_CAP_AMBIENT_RAISE_LOCKED)';
    case 'drop_bounding_caps':
      return 'prctl(PR_CAPBSET_DROP, 0..CAP_LAST_CAP)';
    case 'set_groups':
      return 'setgroups(0, NULL)';
    case 'set_gid':
      return `setresgid(${o.gid}, ${o.gid}, ${o.gid})`;
    case 'set_uid':
      return `setresuid(${o.uid}, ${o.uid}, ${o.uid})`;
    case 'drop_caps':
      return 'prctl(PR_CAP_AMBIENT_CLEAR_ALL); capset(all sets 0)';
    case 'set_no_new_privs':
      return 'prctl(PR_SET_NO_NEW_PRIVS, 1)';
    case 'exec_init':
      return 'execveat(memfd "capsule-init", "", AT_EMPTY_PATH)';
    case 'fork_program':
      return 'clone(SIGCHLD)';
    case 'load_seccomp':
      if (n.seccompFd < 0) return '(no filter)';
      return [
        'seccomp(SECCOMP_SET_MODE_FILTER)',
        filterOrigin(n.seccompFd),
        filterNote(n.seccompFd) && `the profile ${filterNote(n.seccompFd)}`,
      ]
        .filter(Boolean)
        .join('; ');
    case 'exec':
      return `execve(${o.argv.map((a) => JSON.stringify(a)).join(', ')})`;
    default:
      return step;
  }
}

/** The child steps that are not mount operations, in order (each traced with op -1). */
const CHILD_STEPS_WITHOUT_OPS = new Set([
  'map_user_ids',
  'set_netns',
  'set_loopback_up',
  'set_pdeathsig',
  'check_parent',
  'reset_signals',
  'join_cgroup',
  'unshare_cgroupns',
  'pivot_root',
  'detach_old_root',
  'change_dir',
  'set_hostname',
  'new_session',
  'open_pty',
  'send_pty_master',
  'set_rlimits',
  'set_userns',
  'arrange_fds',
  'close_fds',
  'set_securebits',
  'drop_bounding_caps',
  'set_groups',
  'set_gid',
  'set_uid',
  'drop_caps',
  'set_no_new_privs',
]);

/** The steps only a run with a terminal takes (native/tty.cc, init.c). */
const TERMINAL_STEPS = new Set(['open_pty', 'send_pty_master', 'set_controlling_tty']);

export interface CgroupWrite {
  path: string;
  value: string;
  ns: number;
}

/** The steps of a run that happened, with their times. */
export function explainRun(
  o: ResolvedOptions,
  n: NativeOptions,
  ops: NativeOp[],
  cgroupWrites: CgroupWrite[],
  trace: NativeTrace,
  exit: NativeExit | null,
): ExplainStep[] {
  const t0 = trace.cloneStartNs;
  const ms = (ns: number) => (ns - t0) / 1e6;
  const steps: ExplainStep[] = [];
  let prev = cgroupWrites[0]?.ns ?? t0;
  for (const w of cgroupWrites) {
    steps.push(
      entry(
        'set_cgroup_limits',
        'parent',
        `write(${q(w.path)}, ${q(w.value)})`,
        ms(w.ns),
        (w.ns - prev) / 1e6,
      ),
    );
    prev = w.ns;
  }
  if (trace.usernsStartNs)
    steps.push(
      entry(
        'make_userns',
        'parent',
        renderStep('make_userns', o, n),
        ms(trace.usernsStartNs),
        (trace.usernsEndNs! - trace.usernsStartNs) / 1e6,
      ),
    );
  else if (n.usernsFd !== undefined && n.hostUid !== undefined)
    /* Made before this run by the addon's pool thread, with the id's lease (native/userns_pool.h). */
    steps.push(
      entry(
        'make_userns',
        'parent',
        `made ahead by the user-namespace pool's thread: ${renderStep('make_userns', o, n)}`,
        null,
        null,
      ),
    );
  steps.push(entry('clone', 'parent', renderStep('clone', o, n), 0, null));
  /* The first child step's time is the clone's (namespaces made): it is counted there. */
  prev = trace.events[0]?.ns ?? t0;
  for (const ev of trace.events) {
    const call = ev.op >= 0 && ops[ev.op] ? renderOp(ops[ev.op]!) : renderStep(ev.step, o, n);
    if (ev.step === 'exec_init') {
      /* Traced when it begins; it ends when clone returns in the parent. */
      steps.push(entry('exec_init', 'child', call, ms(ev.ns), (trace.cloneEndNs - ev.ns) / 1e6));
      prev = trace.cloneEndNs;
      continue;
    }
    steps.push(entry(ev.step, 'child', call, ms(ev.ns), (ev.ns - prev) / 1e6));
    prev = ev.ns;
  }
  /* The clone itself: from the call to the child's first step (namespaces created). */
  const first = trace.events[0];
  const cloneStep = steps.find((s) => s.step === 'clone')!;
  cloneStep.durationMs = first ? (first.ns - t0) / 1e6 : null;
  if (trace.parentPidfd === 'thread')
    for (const s of steps)
      if (s.step === 'check_parent') s.call = "poll(the cloning thread's pidfd (PIDFD_THREAD), POLLIN, 0)";
  /* A namespace from the pool (set_netns) means clone was called without CLONE_NEWNET. */
  if (trace.events.some((e) => e.step === 'set_netns'))
    cloneStep.call = cloneStep.call.replace('CLONE_NEWNET|', '');
  if (exit?.report) {
    const r = exit.report;
    steps.push(
      entry(
        'fork_program',
        'init',
        renderStep('fork_program', o, n),
        ms(r.forkedNs),
        (r.forkedNs - r.startedNs) / 1e6,
      ),
    );
    if (o.terminal)
      steps.push(
        entry('set_controlling_tty', 'init', renderStep('set_controlling_tty', o, n), ms(r.forkedNs), null),
      );
    steps.push(entry('load_seccomp', 'init', renderStep('load_seccomp', o, n), ms(r.forkedNs), null));
    steps.push(entry('exec', 'init', renderStep('exec', o, n), ms(r.forkedNs), null));
  }
  return steps;
}

/** The steps a run with these options would take, without running anything. */
export function explainPlan(
  o: ResolvedOptions,
  n: NativeOptions,
  ops: NativeOp[],
  cgroupNote: string | null,
): ExplainStep[] {
  const steps: ExplainStep[] = [];
  if (cgroupNote) steps.push(entry('set_cgroup_limits', 'parent', cgroupNote, null, null));
  /* Rootless (src/rootless.ts): clone's user namespace, mapped by the child; no lease, pool or groups. */
  const rootless = n.rootless === true;
  const leased = o.hostIds === 'unique' && !rootless;
  if (leased) steps.push(entry('make_userns', 'parent', renderStep('make_userns', o, n), null, null));
  steps.push(entry('clone', 'parent', renderStep('clone', o, n), null, null));
  const childOrder = STEPS.map((s) => s.name).filter(
    (name) =>
      name !== 'prepare' &&
      name !== 'clone' &&
      name !== 'make_userns' &&
      (name !== 'set_userns' || leased) &&
      (name !== 'map_user_ids' || rootless) &&
      !(rootless && (name === 'set_netns' || (name === 'set_groups' && !n.idMap))) &&
      (!TERMINAL_STEPS.has(name) || o.terminal !== null),
  );
  const opsByStep = new Map<string, NativeOp[]>();
  for (const op of ops) opsByStep.set(op.step, [...(opsByStep.get(op.step) ?? []), op]);
  /* Mount operations run in plan order, between join_cgroup and pivot_root. */
  for (const name of childOrder) {
    if (name === 'make_mounts_private')
      for (const op of ops) steps.push(entry(op.step, 'child', renderOp(op), null, null));
    if (opsByStep.has(name) || name === 'set_cgroup_limits') continue;
    if (CHILD_STEPS_WITHOUT_OPS.has(name) || name === 'exec_init') {
      steps.push(entry(name, 'child', renderStep(name, o, n), null, null));
    } else if (
      name === 'fork_program' ||
      name === 'set_controlling_tty' ||
      name === 'load_seccomp' ||
      name === 'exec'
    ) {
      steps.push(entry(name, 'init', renderStep(name, o, n), null, null));
    }
  }
  return steps;
}

/** Text for a terminal: one line per step, its why under it. */
export function formatExplain(steps: ExplainStep[]): string {
  const stepWidth = Math.max(...steps.map((s) => s.step.length));
  const lines = ['capsule: the steps of this sandbox, in order (see docs/internals.md)'];
  for (const s of steps) {
    const at = s.atMs === null ? '' : `${s.atMs < 0 ? '' : '+'}${s.atMs.toFixed(3)}`.padStart(9);
    const took = (s.durationMs === null ? '' : `${s.durationMs.toFixed(3)} ms`).padStart(10);
    const time = s.atMs === null ? '' : `${at} ${took}  `;
    lines.push(`${time}${s.side.padEnd(6)} ${s.step.padEnd(stepWidth)}  ${s.call}  [${s.man}]`);
    lines.push(`${' '.repeat(time.length + 7 + stepWidth + 2)}${s.why}`);
  }
  return lines.join('\n') + '\n';
}
